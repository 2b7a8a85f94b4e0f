# CPU image: trains and evaluates with the pinned stack. Build: docker build -t medtrain .
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 MPLBACKEND=Agg
WORKDIR /app
COPY settings.ini setup.py constraints.txt README.md MANIFEST.in ./
COPY medtrain ./medtrain
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1 \
 && pip install -c constraints.txt .
COPY configs ./configs
ENTRYPOINT ["medtrain"]
CMD ["--help"]
