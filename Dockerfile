# medtrain images, one multi-stage file. Four targets:
#   cpu        (default)  slim serving image: `medtrain serve` (REST API, /metrics, SageMaker's /ping + /invocations) on
#                         onnxruntime, WITHOUT torch, fastai or timm (settings.ini `serve_runtime`); models need their
#                         model.onnx (`medtrain export`, or registered from a run that has one); no Gradio demo.
#   cuda                  the same on onnxruntime-gpu (the CUDA/cuDNN runtime from NVIDIA's pip wheels; host: the NVIDIA
#                         driver and `docker run --gpus all`)
#   train-cpu, train-cuda the whole package (torch, fastai, timm; settings.ini requirements + EXTRAS): `medtrain train`,
#                         `tune`, `evaluate`, `export`, and `serve` with the demo and the PyTorch backend
#
#   docker build -t medtrain:serve-cpu .                                 (or: make docker)
#   docker build -t medtrain:serve-cuda --target cuda .
#   docker build -t medtrain:train-cpu --target train-cpu .
#   docker build -t medtrain:train-cuda --target train-cuda .            (torch's CUDA wheels bundle the CUDA runtime)
#   More extras in the train images:  --build-arg EXTRAS="serve s3 tune_db"   (settings.ini: serve, report, s3, dicom, tune_db)
#   Run:  docker run -p 8000:8000 -v $PWD/runs/quickstart/model:/models/model:ro medtrain:serve-cpu
#         docker run -p 8000:8000 -v $PWD/registry:/registry medtrain:serve-cpu --model-path lesions@production --workers 2
#         docker run -v $PWD:/work -w /work medtrain:train-cpu train --config configs/quickstart.yaml
#
# The base image is pinned by tag (readable) and by digest (what is pulled: a re-pushed tag cannot change the image).
# The digest is the multi-architecture index digest of python:3.11.14-slim-bookworm. To refresh it (new Python patch
# release or Debian security fixes): `docker buildx imagetools inspect python:3.11-slim-bookworm` (or
# `docker pull python:3.11-slim-bookworm && docker inspect --format '{{index .RepoDigests 0}}' python:3.11-slim-bookworm`),
# then put the new tag and its `sha256:` digest below; keep Python at the minor version the constraints were verified on.
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS python
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg \
    MEDTRAIN_REGISTRY=/registry GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1
WORKDIR /app
RUN useradd --create-home --uid 10001 medtrain && mkdir -p /models /registry && chown medtrain:medtrain /models /registry
# Dependencies come from these three files only: editing medtrain/ (or the README) reuses the dependency layers below,
# so a code change never reinstalls torch. Requirement lists are settings.ini's, pinned by constraints.txt.
COPY settings.ini setup.py constraints.txt ./

# --- the package as a wheel, built once and installed --no-deps into every image ---
FROM python AS wheel
COPY README.md MANIFEST.in ./
COPY nbs/evaluate.ipynb nbs/train.ipynb ./nbs/
COPY medtrain ./medtrain
RUN pip wheel --no-deps --no-build-isolation -c constraints.txt -w /wheel .

# --- serving dependencies: onnxruntime, FastAPI, the image and DICOM decoders; no training stack ---
FROM python AS serve-deps-cpu
ARG ORT_PACKAGE=onnxruntime
RUN python -c 'import configparser, shlex; c = configparser.ConfigParser(delimiters=["="]); c.read("settings.ini"); print("\n".join(shlex.split(c["DEFAULT"]["serve_runtime"])))' > /tmp/requirements.txt \
 && pip install -c constraints.txt -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

FROM serve-deps-cpu AS serve-deps-cuda
RUN pip uninstall -y onnxruntime && pip install "onnxruntime-gpu[cuda,cudnn]==1.32.0"

# --- training dependencies: torch (CPU or CUDA wheels) + settings.ini's requirements + EXTRAS ---
FROM python AS train-deps-cpu
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG EXTRAS=serve
RUN pip install --index-url "${TORCH_INDEX}" torch==2.14.1 torchvision==0.29.1 \
 && python -c 'import configparser, shlex, sys; c = configparser.ConfigParser(delimiters=["="]); c.read("settings.ini"); d = c["DEFAULT"]; print("\n".join(shlex.split(d["requirements"]) + [r for e in sys.argv[1:] for r in shlex.split(d[e + "_requirements"])]))' ${EXTRAS} > /tmp/requirements.txt \
 && pip install -c constraints.txt -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

FROM python AS train-deps-cuda
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ARG EXTRAS=serve
RUN pip install --index-url "${TORCH_INDEX}" torch==2.14.1 torchvision==0.29.1 \
 && python -c 'import configparser, shlex, sys; c = configparser.ConfigParser(delimiters=["="]); c.read("settings.ini"); d = c["DEFAULT"]; print("\n".join(shlex.split(d["requirements"]) + [r for e in sys.argv[1:] for r in shlex.split(d[e + "_requirements"])]))' ${EXTRAS} > /tmp/requirements.txt \
 && pip install -c constraints.txt -r /tmp/requirements.txt \
 && pip uninstall -y onnxruntime && pip install "onnxruntime-gpu==1.32.0" \
 && rm /tmp/requirements.txt

# --- the images ---
FROM train-deps-cpu AS train-cpu
COPY --from=wheel /wheel /wheel
RUN pip install --no-deps /wheel/*.whl && rm -r /wheel
COPY configs ./configs
USER 10001
ENTRYPOINT ["medtrain"]
CMD ["--help"]

FROM train-deps-cuda AS train-cuda
COPY --from=wheel /wheel /wheel
RUN pip install --no-deps /wheel/*.whl && rm -r /wheel
COPY configs ./configs
USER 10001
ENTRYPOINT ["medtrain"]
CMD ["--help"]

FROM serve-deps-cuda AS cuda
COPY --from=wheel /wheel /wheel
RUN pip install --no-deps /wheel/*.whl && rm -r /wheel
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4).status != 200)"]
ENTRYPOINT ["medtrain", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-demo"]
CMD ["--model-path", "/models/model"]

# The default target (last stage): the slim CPU serving image.
FROM serve-deps-cpu AS cpu
COPY --from=wheel /wheel /wheel
RUN pip install --no-deps /wheel/*.whl && rm -r /wheel
USER 10001
EXPOSE 8000
# /ready, not /health: the container is healthy once the model is loaded and answering, not merely once the process runs
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4).status != 200)"]
ENTRYPOINT ["medtrain", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-demo"]
CMD ["--model-path", "/models/model"]
