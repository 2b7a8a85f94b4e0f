# medtrain serving image: `medtrain serve` (REST API + /demo + /metrics) as a non-root user.
#   CPU (default):  docker build -t medtrain .
#   CUDA:           docker build -t medtrain:cuda --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 --build-arg ORT_PACKAGE=onnxruntime-gpu .
#                   (the torch CUDA wheels bundle the CUDA runtime; the host needs the NVIDIA driver and `docker run --gpus all`)
#   More extras:    --build-arg EXTRAS="serve s3"   (settings.ini: serve, report, s3, dicom; the DICOM decoders are always in)
#   Run:            docker run -p 8000:8000 -v $PWD/runs/quickstart/model:/models/model:ro medtrain
#                   docker run -p 8000:8000 -v $PWD/registry:/registry medtrain --model-path lesions@production
#
# The base image is pinned by tag (readable) and by digest (what is pulled: a re-pushed tag cannot change the image).
# The digest is the multi-architecture index digest of python:3.11.14-slim-bookworm. To refresh it (new Python patch
# release or Debian security fixes): `docker buildx imagetools inspect python:3.11-slim-bookworm` (or
# `docker pull python:3.11-slim-bookworm && docker inspect --format '{{index .RepoDigests 0}}' python:3.11-slim-bookworm`),
# then put the new tag and its `sha256:` digest below; keep Python at the minor version the constraints were verified on.
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG ORT_PACKAGE=onnxruntime
ARG EXTRAS=serve
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg \
    MEDTRAIN_REGISTRY=/registry GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1

WORKDIR /app
# 1. Dependencies, from the three files that name them only: editing medtrain/ (or the README) reuses this layer, so a
#    code change never reinstalls torch. The requirement list is settings.ini's (base + EXTRAS), pinned by constraints.txt.
COPY settings.ini setup.py constraints.txt ./
RUN pip install --index-url "${TORCH_INDEX}" torch==2.14.1 torchvision==0.29.1 \
 && python -c 'import configparser, shlex, sys; c = configparser.ConfigParser(delimiters=["="]); c.read("settings.ini"); d = c["DEFAULT"]; print("\n".join(shlex.split(d["requirements"]) + [r for e in sys.argv[1:] for r in shlex.split(d[e + "_requirements"])]))' ${EXTRAS} > /tmp/requirements.txt \
 && pip install -c constraints.txt -r /tmp/requirements.txt \
 && if [ "${ORT_PACKAGE}" != "onnxruntime" ]; then pip uninstall -y onnxruntime && pip install "${ORT_PACKAGE}==1.32.0"; fi \
 && rm /tmp/requirements.txt

# 2. The package itself, without touching the dependencies installed above.
COPY README.md MANIFEST.in ./
COPY nbs/evaluate.ipynb nbs/train.ipynb ./nbs/
COPY medtrain ./medtrain
RUN pip install --no-deps -c constraints.txt .
COPY configs ./configs

RUN useradd --create-home --uid 10001 medtrain && mkdir -p /models /registry && chown medtrain:medtrain /models /registry
USER 10001

EXPOSE 8000
# /ready, not /health: the container is healthy once the model is loaded and answering, not merely once the process runs
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4).status != 200)"]
ENTRYPOINT ["medtrain", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD ["--model-path", "/models/model"]
