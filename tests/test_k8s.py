"""The Kubernetes manifests (deploy/k8s), checked offline: each overlay builds with kustomize (kubectl's built-in one,
installed by `make kubectl`), every object is valid against Kubernetes' own JSON schemas (kubernetes-validate, strict:
an unknown or misspelt field fails), the two custom resources against deploy/k8s/schemas (their pod templates against
Kubernetes' PodTemplate schema), and every container runs a real medtrain command line with flags that exist."""
import contextlib, io, json, os, re, shlex, shutil, subprocess, sys
from pathlib import Path
import pytest, yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT/'deploy'/'k8s'
DOCS = ROOT/'nbs'/'tutorials'/'kubernetes.ipynb'
K8S_VERSIONS = ('1.30', '1.37')   # the oldest Kubernetes the manifests support (Job backoffLimitPerIndex) and the newest schemas shipped
CRD_SCHEMAS = {('kubeflow.org/v1', 'PyTorchJob'): 'pytorchjob-kubeflow-v1.json',
               ('monitoring.coreos.com/v1', 'ServiceMonitor'): 'servicemonitor-monitoring-v1.json'}
USER_SECRETS = {'medtrain-api-key', 'medtrain-postgres'}   # created with `kubectl create secret`, never committed
WORKLOADS = ('Deployment', 'StatefulSet', 'Job', 'PyTorchJob', 'CronJob')

def kustomize_cmd() -> list[str]:
    "The pinned kubectl in this environment's bin (make kubectl), else a kustomize or kubectl on PATH; never a skip."
    exe = Path(sys.executable).parent/'kubectl'
    if exe.exists(): return [str(exe), 'kustomize']
    if shutil.which('kustomize'): return ['kustomize', 'build']
    if shutil.which('kubectl'): return ['kubectl', 'kustomize']
    pytest.fail("no kustomize to build deploy/k8s: run `make kubectl` (puts kubectl, which has kustomize built in, into .venv/bin)")

def build(path) -> list[dict]:
    r = subprocess.run(kustomize_cmd() + [str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"kustomize build {path} failed:\n{r.stderr}"
    return [d for d in yaml.safe_load_all(r.stdout) if d]

@pytest.fixture(scope='module')
def built(tmp_path_factory):
    "{overlay name: objects}: every overlay, plus the cpu overlay with the optional ingress component as the docs add it."
    out = {p.parent.name: build(p.parent) for p in sorted((K8S/'overlays').glob('*/kustomization.yaml'))}
    tmp = tmp_path_factory.mktemp('ingress')
    rel = os.path.relpath(K8S, tmp)   # kustomize wants relative paths
    (tmp/'kustomization.yaml').write_text(yaml.safe_dump({'resources': [f'{rel}/overlays/cpu'], 'components': [f'{rel}/components/ingress']}))
    out['cpu+ingress'] = build(tmp)
    return out

def of_kind(objs, kind, name=None): return [o for o in objs if o['kind'] == kind and (name is None or o['metadata']['name'] == name)]
def one(objs, kind, name):
    found = of_kind(objs, kind, name); assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]

def pod_templates(obj) -> list[dict]:
    if obj['kind'] == 'PyTorchJob': return [r['template'] for r in obj['spec']['pytorchReplicaSpecs'].values()]
    if obj['kind'] == 'CronJob': return [obj['spec']['jobTemplate']['spec']['template']]
    return [obj['spec']['template']]

def containers(obj, init=True):
    for t in pod_templates(obj):
        yield from t['spec']['containers'] + (t['spec'].get('initContainers', []) if init else [])

def schema_errors(obj, version) -> list[str]:
    "Why `obj` is not valid against its schema (Kubernetes' own, or ours for a custom resource); [] when it is."
    import jsonschema, kubernetes_validate as kv
    name = f"{obj['kind']}/{obj['metadata']['name']}"
    key = (obj['apiVersion'], obj['kind'])
    if key in CRD_SCHEMAS:
        schema = json.loads((K8S/'schemas'/CRD_SCHEMAS[key]).read_text())
        errs = [f"{name}: {e.message} at {'/'.join(map(str, e.absolute_path))}" for e in jsonschema.Draft202012Validator(schema).iter_errors(obj)]
        for i, t in enumerate(pod_templates(obj) if obj['kind'] == 'PyTorchJob' else []):
            errs += schema_errors({'apiVersion': 'v1', 'kind': 'PodTemplate', 'metadata': {'name': f"{obj['metadata']['name']}-{i}"}, 'template': t}, version)
        return errs
    try: kv.validate(obj, version, strict=True)
    except kv.ValidationError as e: return [f"{name} (Kubernetes {version}): {e.message} at {'/'.join(map(str, e.absolute_path))}"]
    except kv.SchemaNotFoundError: return [f"{name}: no Kubernetes {version} schema for {key} (a custom resource needs one in deploy/k8s/schemas)"]
    return []

def test_every_object_is_valid_against_the_kubernetes_schemas(built):
    assert {'cpu', 'gpu'} <= set(built), f"overlays: {sorted(built)}"
    for overlay, objs in built.items():
        kinds = {o['kind'] for o in objs}
        assert {'Deployment', 'Service', 'HorizontalPodAutoscaler', 'ServiceMonitor', 'PyTorchJob', 'Job', 'StatefulSet',
                'PersistentVolumeClaim', 'ConfigMap', 'PodDisruptionBudget'} <= kinds, (overlay, kinds)
        errors = [e for o in objs for v in K8S_VERSIONS for e in schema_errors(o, v)]
        assert not errors, f"{overlay}:\n" + '\n'.join(errors)
    assert of_kind(built['cpu+ingress'], 'Ingress') and not of_kind(built['cpu'], 'Ingress')

def test_the_validation_catches_typos(built):
    "The checks above can fail: a misspelt probe, a PyTorchJob container the operator would not find, a ServiceMonitor typo."
    import copy
    objs = copy.deepcopy(built['cpu'])
    serve = one(objs, 'Deployment', 'medtrain-serve')
    serve['spec']['template']['spec']['containers'][0]['readinesProbe'] = {'httpGet': {'path': '/ready', 'port': 'http'}}
    assert any('readinesProbe' in e for e in schema_errors(serve, K8S_VERSIONS[0]))
    job = one(objs, 'PyTorchJob', 'medtrain-train-ddp')
    job['spec']['pytorchReplicaSpecs']['Worker']['template']['spec']['containers'][0]['name'] = 'train'
    assert schema_errors(job, K8S_VERSIONS[0])
    job = one(copy.deepcopy(built['cpu']), 'PyTorchJob', 'medtrain-train-ddp')
    job['spec']['pytorchReplicaSpecs']['Master']['template']['spec']['containers'][0]['resources']['limit'] = {}   # inside a pod template
    assert any("'limit'" in e for e in schema_errors(job, K8S_VERSIONS[0]))
    sm = one(objs, 'ServiceMonitor', 'medtrain-serve')
    sm['spec']['endpoints'][0]['paht'] = '/metrics'
    assert schema_errors(sm, K8S_VERSIONS[0])

def test_serving_probes_ports_and_selectors_fit_together(built):
    for overlay, objs in built.items():
        dep = one(objs, 'Deployment', 'medtrain-serve')
        pod = dep['spec']['template']
        c = next(c for c in pod['spec']['containers'] if c['name'] == 'serve')
        from medtrain.cli import build_parser
        args = build_parser().parse_args(c['command'][1:] + c['args'])
        port = {p['name']: p['containerPort'] for p in c['ports']}
        assert port['http'] == args.port and args.host == '0.0.0.0', (overlay, port, args.port)
        assert c['readinessProbe']['httpGet'] == {'path': '/ready', 'port': 'http'}, "readiness must wait for the model (/ready)"
        assert c['livenessProbe']['httpGet'] == {'path': '/health', 'port': 'http'}, "liveness is /health (a loading model is not dead)"
        assert args.model_path == next(m['mountPath'] for m in c['volumeMounts'] if m['name'] == 'models') + '/model'
        svc = one(objs, 'Service', 'medtrain-serve')
        assert svc['spec']['selector'].items() <= pod['metadata']['labels'].items()
        assert dep['spec']['selector']['matchLabels'].items() <= pod['metadata']['labels'].items()
        assert {p['targetPort'] for p in svc['spec']['ports']} <= set(port)
        hpa = one(objs, 'HorizontalPodAutoscaler', 'medtrain-serve')
        assert hpa['spec']['scaleTargetRef'] == {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'name': 'medtrain-serve'}
        assert one(objs, 'PodDisruptionBudget', 'medtrain-serve')['spec']['selector']['matchLabels'].items() <= pod['metadata']['labels'].items()
        sm = one(objs, 'ServiceMonitor', 'medtrain-serve')
        assert sm['spec']['selector']['matchLabels'].items() <= svc['metadata']['labels'].items(), "the ServiceMonitor selects no Service"
        assert {e['port'] for e in sm['spec']['endpoints']} <= {p['name'] for p in svc['spec']['ports']}
        assert [e['path'] for e in sm['spec']['endpoints']] == ['/metrics']
        for ing in of_kind(objs, 'Ingress'):
            backends = [p['backend']['service'] for r in ing['spec']['rules'] for p in r['http']['paths']]
            assert all(b['name'] == 'medtrain-serve' and b['port']['name'] in {p['name'] for p in svc['spec']['ports']} for b in backends)

def test_pods_run_as_non_root_with_a_read_only_root_and_limits(built):
    for overlay, objs in built.items():
        for w in (o for o in objs if o['kind'] in WORKLOADS):
            name = f"{overlay}: {w['kind']}/{w['metadata']['name']}"
            for t in pod_templates(w):
                assert t['spec']['securityContext'].get('runAsNonRoot') is True, name
                scratch = {v['name'] for v in t['spec'].get('volumes', []) if 'emptyDir' in v}
                for c in containers(w):
                    sc = c.get('securityContext', {})
                    assert sc.get('readOnlyRootFilesystem') is True and sc.get('allowPrivilegeEscalation') is False, f"{name}/{c['name']}"
                    assert sc.get('capabilities', {}).get('drop') == ['ALL'], f"{name}/{c['name']}"
                    assert {'requests', 'limits'} <= set(c.get('resources', {})), f"{name}/{c['name']}: no resources"
                    mounts = {m['mountPath']: m['name'] for m in c.get('volumeMounts', [])}
                    assert mounts.get('/tmp') in scratch, f"{name}/{c['name']}: read-only root but no emptyDir at /tmp"

def _env(c, objs) -> dict:
    "A container's environment as the pod would see it: literal values, ConfigMap keys from the build, samples for the rest."
    cms = {o['metadata']['name']: o.get('data', {}) for o in of_kind(objs, 'ConfigMap')}
    out = {}
    for e in c.get('env', []):
        ref = e.get('valueFrom', {})
        if 'value' in e: out[e['name']] = e['value']
        elif 'configMapKeyRef' in ref:
            cm = ref['configMapKeyRef']
            assert cm['key'] in cms[cm['name']], f"{c['name']}: ConfigMap {cm['name']} has no key {cm['key']}"
            out[e['name']] = cms[cm['name']][cm['key']]
        elif 'fieldRef' in ref: out[e['name']] = '3' if 'completion-index' in ref['fieldRef']['fieldPath'] else 'sample-job'
        else: out[e['name']] = f"<{e['name']}>"
    return out

def _expand(s: str, env: dict) -> str:
    s = re.sub(r'\$\((\w+)\)', lambda m: env.get(m[1], m[0]), s)               # Kubernetes' $(VAR) in command/args
    return re.sub(r'\$\{(\w+)\}|\$(\w+)', lambda m: env.get(m[1] or m[2], m[0]), s)   # the shell's, in sh -c scripts

def command_lines(c, objs) -> list[list[str]]:
    "Every `medtrain ...` a container runs (directly, in an `sh -c` script, or after `torchrun -m`), as argv after 'medtrain'."
    env = _env(c, objs)
    cmd = [_expand(a, env) for a in c.get('command', []) + c.get('args', [])]
    if cmd[:1] == ['medtrain']: return [cmd[1:]]
    if cmd[:1] == ['sh'] and cmd[1].startswith('-') and 'c' in cmd[1]:
        lines = []
        for line in c['command'][2].splitlines():
            if m := re.fullmatch(r'\s*(\w+)="([^"]*)"\s*', line): env[m[1]] = _expand(m[2], env); continue
            words = shlex.split(_expand(line, env))
            if words[:1] == ['exec']: words = words[1:]
            if words[:1] == ['medtrain']: lines.append(words[1:])
            elif words[:1] == ['torchrun']:
                assert '-m' in words and words[words.index('-m') + 1] == 'medtrain', line
                lines.append(words[words.index('-m') + 2:])
        return lines
    return []

def test_containers_run_real_medtrain_commands(built):
    "Each command line parses with medtrain's own parser (no invented flag), and reads only files the pod mounts."
    from medtrain.cli import build_parser
    from medtrain.registry import is_reference
    seen = set()
    for overlay, objs in built.items():
        config = one(objs, 'ConfigMap', next(o['metadata']['name'] for o in of_kind(objs, 'ConfigMap') if 'train.yaml' in o.get('data', {})))
        for w in (o for o in objs if o['kind'] in WORKLOADS):
            for c in containers(w):
                mounts = {m['mountPath'] for m in c.get('volumeMounts', [])}
                for argv in command_lines(c, objs):
                    err = io.StringIO()
                    with contextlib.redirect_stderr(err):
                        try: args = build_parser().parse_args(argv)
                        except SystemExit: pytest.fail(f"{overlay} {w['metadata']['name']}/{c['name']}: `medtrain {shlex.join(argv)}` does not parse: {err.getvalue()}")
                    seen.add(' '.join(argv[:2]) if argv[0] == 'registry' else argv[0])
                    for flag in ('config', 'space'):
                        p = getattr(args, flag, None)
                        if p is not None and str(p).startswith('/etc/medtrain/'):
                            assert '/etc/medtrain' in mounts and p.name in config['data'], f"{c['name']}: --{flag} {p} is not in the mounted ConfigMap"
                    for flag in ('run_dir', 'resume', 'out'):
                        p = getattr(args, flag, None)
                        if p is not None: assert str(p).startswith('/shared/') and '/shared' in mounts, f"{c['name']}: --{flag} {p} is not on the shared volume"
                if c['name'] == 'fetch-model':   # the init container's copy script: valid Python, a real function, a registry reference
                    compile(c['command'][2], 'fetch-model', 'exec')
                    assert 'resolve_model' in c['command'][2] and is_reference(_env(c, objs)['MODEL_REF'])
    assert {'serve', 'train', 'tune', 'registry register'} <= seen, seen
    assert "'checkpoints'/'last.pt'" in (ROOT/'medtrain'/'train.py').read_text(), "the jobs resume when checkpoints/last.pt exists"

def test_training_config_and_search_space_are_valid():
    "The ConfigMap's files load as medtrain loads them (a typo in a key would stop every training pod)."
    from medtrain.config import load_config
    from medtrain.tune import read_space
    cfg = load_config(K8S/'base'/'config'/'train.yaml', environ={})
    assert str(cfg.tracking.runs_dir).startswith('/shared/') and str(cfg.data.path).startswith('/shared/')
    assert read_space(K8S/'base'/'config'/'space.yaml')

def test_gpu_overlay_asks_for_gpus_and_cpu_overlay_does_not(built):
    for overlay in ('cpu', 'gpu'):
        for w in (o for o in built[overlay] if o['kind'] in WORKLOADS and o['metadata']['name'] != 'medtrain-postgres'):
            for t in pod_templates(w):
                for c in t['spec']['containers']:
                    gpus = int(c['resources'].get('limits', {}).get('nvidia.com/gpu', 0))
                    tag = c['image'].rsplit(':', 1)[-1]
                    where = f"{overlay}: {w['metadata']['name']}/{c['name']}"
                    assert tag == {'cpu': 'cpu', 'gpu': 'cuda'}[overlay], f"{where}: image {c['image']}"
                    if overlay == 'cpu' or w['metadata']['name'] == 'medtrain-toolbox': assert gpus == 0, where; continue
                    assert gpus >= 1, f"{where}: no nvidia.com/gpu"
                    assert any(tol.get('key') == 'nvidia.com/gpu' for tol in t['spec'].get('tolerations', [])), where
                    if w['kind'] == 'PyTorchJob': assert int(w['spec']['nprocPerNode']) == gpus, "one process per GPU"
                    if w['metadata']['name'] == 'medtrain-train': assert int(_env(c, built[overlay])['NUM_PROCESSES']) == gpus

def test_secrets_are_referenced_never_committed(built):
    "No Secret is in git; the pods read the two a user creates, the ingress makes the API key required, the DB password stays out of argv."
    for overlay, objs in built.items():
        assert not of_kind(objs, 'Secret'), f"{overlay}: a Secret is committed"
        refs = {e['valueFrom']['secretKeyRef']['name']: e['valueFrom']['secretKeyRef'].get('optional', False)
                for w in objs if w['kind'] in WORKLOADS for c in containers(w) for e in c.get('env', []) if 'secretKeyRef' in e.get('valueFrom', {})}
        assert set(refs) == USER_SECRETS, refs
        assert refs['medtrain-api-key'] is (overlay != 'cpu+ingress'), "exposed through the ingress, the API key must be required"
        tune = one(objs, 'Job', 'medtrain-tune')
        c = tune['spec']['template']['spec']['containers'][0]
        storage = command_lines(c, objs)[0][command_lines(c, objs)[0].index('--storage') + 1]
        assert storage.startswith('postgresql://') and ':' not in storage.split('@')[0].split('//')[1], "the password must come from PGPASSWORD"
        assert 'PGPASSWORD' in {e['name'] for e in c['env']}
        assert tune['spec']['completionMode'] == 'Indexed' and tune['spec']['parallelism'] >= 2
    text = DOCS.read_text()
    for s in USER_SECRETS: assert f'create secret generic {s}' in text, f"the docs do not say how to create {s}"

def test_docs_apply_steps_cover_every_object(built):
    "The 'Running on Kubernetes' page: each `kubectl apply -k DIR -l app.kubernetes.io/component=X` names a real overlay and a label that selects objects, and together the steps apply every object."
    text = ''.join(''.join(c['source']) for c in json.loads(DOCS.read_text())['cells'])
    steps = re.findall(r'kubectl apply -k (\S+)(?: -l app\.kubernetes\.io/component=([\w-]+))?', text)
    assert len(steps) >= 5, steps
    applied = set()
    for path, comp in steps:
        overlay = Path(path).name
        assert (ROOT/path/'kustomization.yaml').exists(), f"docs: kubectl apply -k {path}: no such kustomization"
        hit = [o for o in built[overlay] if not comp or o['metadata'].get('labels', {}).get('app.kubernetes.io/component') == comp]
        assert hit, f"docs: -l app.kubernetes.io/component={comp} selects nothing in {path}"
        applied |= {(o['kind'], o['metadata']['name']) for o in hit}
    everything = {(o['kind'], o['metadata']['name']) for o in built['cpu']}
    assert everything <= applied, f"never applied by the documented steps: {sorted(everything - applied)}"

GUIDES = [ROOT/'nbs'/'tutorials'/f'{n}.ipynb' for n in ('kubernetes', 'sagemaker', 'vertex_ai')]

def guide_command_lines(nb: Path) -> list[list[str]]:
    "Every `medtrain SUBCOMMAND ...` in a guide's bash blocks (up to ; & | or a quote), gcloud's --container-args, and YAML containerSpecs."
    from medtrain.cli import build_parser
    text = ''.join(''.join(c['source']) for c in json.loads(nb.read_text())['cells'])
    out = []
    for lang, block in re.findall(r'```(\w*)\n(.*?)```', text, re.S):
        if lang == 'yaml':
            def walk(o):
                if isinstance(o, dict):
                    if o.get('command') == ['medtrain']: out.append([str(a) for a in o.get('args', [])])
                    for v in o.values(): walk(v)
                elif isinstance(o, list):
                    for v in o: walk(v)
            walk(yaml.safe_load(block))
        elif lang == 'bash':
            block = block.replace('\\\n', ' ')
            commands = {a.dest: a for a in build_parser()._actions if a.dest == 'command'}['command'].choices
            for m in re.finditer(r'(?<![\w/=.-])medtrain\s+(' + '|'.join(commands) + r')\b([^;&|"\n#]*)', block):
                out.append([m[1], *shlex.split(re.sub(r'\$\{?\w+\}?', 'x', m[2]))])
            for m in re.finditer(r'--container-command=medtrain\s+--container-args=(\S+)', block):   # gcloud ai models upload
                out.append(m[1].split(','))
    return out

@pytest.mark.parametrize('nb', GUIDES, ids=lambda p: p.stem)
def test_guides_use_real_medtrain_command_lines(nb):
    "The cloud and Kubernetes guides are not run in CI, but each medtrain command they show parses with the real CLI."
    from medtrain.cli import build_parser
    lines = guide_command_lines(nb)
    assert len(lines) >= 3, f"{nb.name}: only {lines}"
    text = nb.read_text()
    assert nb.stem == 'kubernetes' or 'Not run in CI' in text, f"{nb.name} must say it is not run in CI"
    for argv in lines:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try: build_parser().parse_args(argv)
            except SystemExit: pytest.fail(f"{nb.name}: `medtrain {shlex.join(argv)}` does not parse: {err.getvalue()}")

def test_the_retrain_cronjob_runs_monitor_then_retrain_on_the_shared_registry(built):
    "deploy/k8s/base/retrain-cronjob.yaml: drift report, then `medtrain retrain` of the served model; never two at once; a rejection (exit 6) is not a failed job."
    from medtrain.retrain import RETRAIN_REJECTED_EXIT
    from medtrain.monitor import DRIFT_EXIT_CODE
    for overlay, objs in built.items():
        cron = one(objs, 'CronJob', 'medtrain-retrain')
        assert cron['spec']['concurrencyPolicy'] == 'Forbid' and cron['spec']['jobTemplate']['spec']['backoffLimit'] == 0
        c = next(containers(cron))
        lines = command_lines(c, objs)
        assert [l[0] for l in lines] == ['monitor', 'retrain'], lines
        assert lines[0][lines[0].index('--model') + 1] == f"{lines[1][lines[1].index('--name') + 1]}@production"
        assert _env(c, objs)['MEDTRAIN_REGISTRY'].startswith('/shared/')
        script = c['command'][2]
        assert f'-eq {RETRAIN_REJECTED_EXIT} ]' in script and f'-ne {DRIFT_EXIT_CODE} ]' in script
