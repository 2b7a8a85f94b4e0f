# medtrain serving image: `medtrain serve` (REST API + /demo + /metrics) as a non-root user.
#   CPU (default):  docker build -t medtrain .
#   CUDA:           docker build -t medtrain:cuda --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 --build-arg ORT_PACKAGE=onnxruntime-gpu .
#                   (the torch CUDA wheels bundle the CUDA runtime; the host needs the NVIDIA driver and `docker run --gpus all`)
#   Run:            docker run -p 8000:8000 -v $PWD/runs/quickstart/model:/models/model:ro medtrain
#                   docker run -p 8000:8000 -v $PWD/registry:/registry medtrain --model-path lesions@production
FROM python:3.11.14-slim-bookworm

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG ORT_PACKAGE=onnxruntime
ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg \
    MEDTRAIN_REGISTRY=/registry GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1

WORKDIR /app
COPY settings.ini setup.py constraints.txt README.md MANIFEST.in ./
COPY medtrain ./medtrain
RUN pip install --index-url "${TORCH_INDEX}" torch==2.14.1 torchvision==0.29.1 \
 && pip install -c constraints.txt . \
 && if [ "${ORT_PACKAGE}" != "onnxruntime" ]; then pip uninstall -y onnxruntime && pip install "${ORT_PACKAGE}==1.32.0"; fi
COPY configs ./configs

RUN useradd --create-home --uid 10001 medtrain && mkdir -p /models /registry && chown medtrain:medtrain /models /registry
USER 10001

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"]
ENTRYPOINT ["medtrain", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD ["--model-path", "/models/model"]
