#!/usr/bin/env python
"""Build the documentation site from the notebooks without Quarto (what `make docs` runs where `quarto` is missing).

nbdev_docs needs the Quarto binary, which cannot be installed offline. This builds the same pages with tools that
install from PyPI: nbdev's own notebook processors (hidden cells, `#| echo`/`#| output` directives, show_doc cells
after every exported definition, backtick links), then mkdocs-material + mkdocs-jupyter, with offline search.

Why not `nbdev_proc_nbs`: its `exec_show_docs` step re-executes every exported and import cell of every notebook
(minutes here, and it fails on cells that import and use results of cells it skips). The modules are already
exported, so show_doc output is rendered from `medtrain.<module>` directly: the same markdown, in seconds.

Pages: home (nbs/index.ipynb), tutorials (every notebook in nbs/tutorials/), one chapter per numbered notebook in
pipeline order, the other notebooks (papermill reports), an API reference page per module for every name in its
`__all__` (signature, docments parameter table, docstring, source link), and a CLI reference from `--help`.

`python tools/docs.py [--out DIR]` (default `_docs/`, settings.ini's `doc_path`); the staging folder is `_build/docs/`.
"""
import argparse, html, typing, importlib, inspect, json, re, shutil, subprocess, sys, time, warnings
from pathlib import Path
from html.parser import HTMLParser
from urllib.parse import urlsplit, unquote

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
NBS = ROOT/'nbs'
TUTORIAL_ORDER = ['quickstart', 'own_data', 'reports', 'serving']  # reading order; other tutorials follow by name

def _settings():
    import configparser
    c = configparser.ConfigParser(); c.read(ROOT/'settings.ini')
    return c['DEFAULT']

# The site's Quarto settings live in one file, the top-level _quarto.yml: nbdev 2 reads `<nbs_path>/_quarto.yml`
# (nbdev.quarto.refresh_quarto_yml, nbdev.serve.proc_nbs), which is a symlink to it, and this builder reads it too.
# Quarto's project is nbs/ (nbdev renders from there), so paths in it (css) are relative to nbs/.
QUARTO_YML = ROOT/'_quarto.yml'

def site_settings(quarto_yml: Path = QUARTO_YML) -> dict:
    "What the mkdocs site takes from `_quarto.yml`: title, description, stylesheets, search, repository link (settings.ini fills the gaps, as nbdev.yml does for Quarto)."
    import yaml
    q, cfg = yaml.safe_load(Path(quarto_yml).read_text()) or {}, _settings()
    web, html = q.get('website') or {}, (q.get('format') or {}).get('html') or {}
    css = html.get('css') or []
    return dict(title=web.get('title', cfg['title']), description=web.get('description', cfg['description']),
                css=[NBS/c for c in ([css] if isinstance(css, str) else css)],
                search=(web.get('navbar') or {}).get('search', True), repo_url=web.get('repo-url', cfg['git_url']))

# ---------------------------------------------------------------- which notebooks become which pages
def is_numbered(p: Path) -> bool: return bool(re.match(r'^\d+[a-z]{0,2}_', p.name))

def notebooks():
    "(section, notebook path) in reading order: home, tutorials, chapters (pipeline order), other notebooks."
    top = sorted(NBS.glob('*.ipynb'))
    tut = sorted((NBS/'tutorials').glob('*.ipynb'),
                 key=lambda p: (TUTORIAL_ORDER.index(p.stem) if p.stem in TUTORIAL_ORDER else len(TUTORIAL_ORDER), p.stem))
    res = [('Home', NBS/'index.ipynb')]
    res += [('Tutorials', p) for p in tut]
    res += [('Chapters', p) for p in top if is_numbered(p)]
    res += [('Report notebooks', p) for p in top if not is_numbered(p) and p.name != 'index.ipynb']
    return res

def nb_title(nb) -> str:
    for c in nb['cells']:
        if c['cell_type'] == 'markdown':
            m = re.match(r'\s*#\s+(.+)', ''.join(c['source']))
            if m: return m.group(1).strip()
    return ''

# ---------------------------------------------------------------- API reference: show_doc markdown from the modules
def modidx():
    from medtrain._modidx import d
    return d

def _anchor(url: str) -> str: return url.split('#', 1)[1] if '#' in url else ''

def doc_markdown(obj, name: str, anchor: str, heading='###') -> str:
    "show_doc's markdown for `obj` (signature, docments table, docstring) made plain markdown with a stable anchor."
    from nbdev.showdoc import show_doc
    if inspect.isclass(obj) and hasattr(obj, 'model_fields'):  # pydantic: the fields are the interface, not **data
        doc = vars(obj).get('__doc__') or ''
        md = f"{heading} {name}\n\n```python\nclass {name}({', '.join(b.__name__ for b in obj.__bases__)})\n```\n\n" + \
             (f"*{inspect.cleandoc(doc)}*\n\n" if doc else '') + _fields_table(obj)
    elif callable(obj) or inspect.isclass(obj):
        inherited = inspect.isclass(obj) and not vars(obj).get('__doc__')  # e.g. pydantic's long BaseModel docstring
        if inherited:
            try: obj.__doc__ = ''
            except (AttributeError, TypeError): inherited = False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                md = show_doc(obj, name=name, title_level=len(heading))._repr_markdown_()
        except Exception as e:  # one odd object must not take the whole site down: plain signature + docstring, and say so
            print(f'!! show_doc({name}) failed ({type(e).__name__}: {e}); using its plain signature', file=sys.stderr)
            try: sig = str(inspect.signature(obj))
            except (TypeError, ValueError): sig = '(...)'
            md = f"{heading} {name}\n\n```python\n{name}{sig}\n```\n\n*{inspect.getdoc(obj) or ''}*\n"
        finally:
            if inherited: obj.__doc__ = None
        md = re.sub(r'^---\s*', '', md)
        md += _params_table(obj)
        if inspect.isclass(obj): md = md.replace(f'```python\ndef {name}(', f'```python\nclass {name}(', 1)
        md = re.sub(r'\)\{target="_blank"[^}]*\}', ')', md)  # Quarto-only link attributes
        try:
            line = inspect.getsourcelines(inspect.unwrap(obj))[1]
            md = md.replace('#LNone', f'#L{line}')
        except (TypeError, OSError): md = md.replace('#LNone', '')
        md = re.sub(r'\[source\]\(([^)]*)\)', r'<span class="md-source-link">[source](\1)</span>', md, count=1)
    else:
        r = repr(obj)
        if len(r) > 300: r = r[:300] + ' …'
        md = f"{heading} {name}\n\n```python\n{name} = {r}\n```\n"
    return re.sub(rf'^{heading} (.+)$', lambda m: f'{heading} {m.group(1)} {{#{anchor}}}', md, count=1, flags=re.M)

def _params_table(obj) -> str:
    "The classic nbdev parameter table (type, default, details) from fastcore's docments, when parameters are documented."
    from fastcore.docments import docments
    try: d = docments(obj, full=True)
    except Exception: return ''
    if not any(v.get('docment') for v in d.values()): return ''
    def cell(x): return '' if x is None or x is inspect._empty else f"`{getattr(x, '__name__', x)}`".replace('|', 'or')
    rows = ['\n\n| | type | default | details |', '|---|---|---|---|']
    for name, v in d.items():
        if name == 'return' and v.get('anno') in (None, inspect._empty) and not v.get('docment'): continue
        if v.get('default') not in (None, inspect._empty): v = {**v, 'default': repr(v['default'])}
        rows.append(f"| **{'returns' if name == 'return' else name}** | {cell(v.get('anno'))} | {cell(v.get('default'))} | {(v.get('docment') or '').replace('|', '/')} |")
    return '\n'.join(rows) + '\n'

def _fields_table(model) -> str:
    "A pydantic model's fields as the table a config reader wants: key, type, default, meaning."
    rows = ['| field | type | default | meaning |', '|---|---|---|---|']
    for k, f in model.model_fields.items():
        a = f.annotation
        t = a.__name__ if isinstance(a, type) and typing.get_origin(a) is None else str(a).replace('typing.', '')
        t = t.replace(' | ', ' or ')  # a pipe would split the table cell
        d = '' if f.is_required() else repr(f.get_default(call_default_factory=True))
        rows.append(f"| `{k}` | `{t}` | `{d}` | {(f.description or '').replace('|', '/')} |".replace('``', ''))
    return '\n'.join(rows) + '\n'

def api_pages(pages: dict) -> list:
    "One markdown page per module with every public name in its `__all__`; returns [(module name, page path, markdown)]."
    out, idx = [], modidx()['syms']
    for modname in sorted(idx, key=_module_order):
        mod = importlib.import_module(modname)
        names = list(getattr(mod, '__all__', []))
        if not names: continue
        short = modname.split('.', 1)[1]
        summary = (mod.__doc__ or '').strip().splitlines()[0] if (mod.__doc__ or '').strip() else ''
        chapter = (f" The prose, examples and tests are in the chapter [{pages[modname][1] or short}](../{pages[modname][0]})."
                   if modname in pages else '')
        lines = [f"# {modname}\n", summary, f"Every public name of `{modname}` (its `__all__`).{chapter}\n"]
        for nm in names:
            obj = getattr(mod, nm)
            lines.append(doc_markdown(obj, nm, nm.lower()))
            if inspect.isclass(obj):  # methods the class defines itself, with their own docstring
                for mname, m in vars(obj).items():
                    if mname.startswith('_') or not callable(m) or not inspect.getdoc(m): continue
                    lines.append(doc_markdown(getattr(obj, mname), f'{nm}.{mname}', f'{nm.lower()}.{mname.lower()}', '####'))
        p = Path('api')/f'{short}.md'
        out.append((modname, p, '\n\n'.join(lines)))
    return out

def _module_order(modname):
    "Modules in the order of their chapter (numbered notebook) in the pipeline."
    for i, (_, p) in enumerate(notebooks()):
        if _default_exp(p) == modname.split('.', 1)[1]: return (i, modname)
    return (10**6, modname)

def _default_exp(p: Path):
    for c in json.loads(p.read_text())['cells']:
        m = re.search(r'^#\|\s*default_exp\s+(\S+)', ''.join(c['source']), re.M)
        if m: return m.group(1)

# ---------------------------------------------------------------- CLI reference from the parser itself
def cli_markdown() -> str:
    "Every (sub)command's `--help`, walked from `medtrain.cli.build_parser` so it can never drift."
    import argparse as ap, os
    os.environ['COLUMNS'] = '100'
    from medtrain.cli import build_parser
    parts = ["# Command-line reference\n",
             "Generated from the `medtrain` command's own `--help` output (`medtrain.cli.build_parser`) each time the "
             "docs are built. `python -m medtrain …` is the same program.\n"]
    def walk(p, path):
        parts.append(f"## `{' '.join(path)}` {{#{'-'.join(path)}}}\n\n```text\n{p.format_help().rstrip()}\n```\n")
        for a in p._actions:
            if isinstance(a, ap._SubParsersAction):
                for name, sp in a.choices.items(): walk(sp, path + [name])
    walk(build_parser(), ['medtrain'])
    return '\n'.join(parts)

# ---------------------------------------------------------------- notebook processing (nbdev processors, no Quarto)
def _link_rewriter(depth: int, urlmap: dict):
    "nbdev links own names to the hosted Quarto site; point them at the local API reference instead."
    cfg = _settings()
    host = (cfg['doc_host'] + cfg['doc_baseurl']).rstrip('/') + '/'
    up = '../' * depth
    def rewrite(text: str) -> str:
        def sub(m):
            url = m.group(0)[len(host):]
            return up + urlmap.get(url, urlmap.get(url.split('#')[0], url))
        return re.sub(re.escape(host) + r'[^)\s"\'>]*', sub, text)
    return rewrite

def process_notebook(src: Path, dst: Path, depth: int, urlmap: dict):
    from execnb.nbio import read_nb, write_nb
    from nbdev import processors as P
    from nbdev.process import NBProcessor
    nb = read_nb(src)
    # a raw YAML front-matter cell (`---` … `---`, e.g. `skip_exec: true` of the papermill notebooks) is Quarto's, not the reader's
    nb.cells = [c for c in nb.cells if not (c.cell_type == 'raw' and c.source.lstrip().startswith('---'))]
    mod = _default_exp(src)
    ns = {}
    if mod:
        m = importlib.import_module(f'medtrain.{mod}')
        ns.update(vars(m))
    from mkdocs_jupyter.utils import slugify
    heading_slugs = {slugify(h.replace('`', '')) for c in nb.cells if c.cell_type == 'markdown'
                     for h in re.findall(r'^#+ (.+)$', c.source, re.M)}
    def render_show_docs(cell):
        "Replace exec_show_docs: render `show_doc(x)` cells from the exported module, without re-running the notebook."
        if cell.cell_type != 'code': return
        m = re.fullmatch(r'\s*show_doc\((.+?)\)\s*', re.sub(r'^#\|.*\n?', '', cell.source or '', flags=re.M))
        if not m: return
        expr = m.group(1).split(',')[0].strip()
        try: obj = eval(expr, ns)
        except Exception: return  # a name defined only inside the notebook (not exported): leave the cell as it is
        name = expr.split('.')[-2] + '.' + expr.split('.')[-1] if '.' in expr else expr
        md = doc_markdown(obj, name, name.lower())
        md = re.sub(r'\s*\{#[^}]*\}$', '', md, count=1, flags=re.M)  # attr_list is for .md pages; notebooks use html ids
        if slugify(name) in heading_slugs:  # same id as a section heading: keep it out of the page contents (ids must be unique)
            md = re.sub(r'^### (.+)$', lambda m: f'<h3 id="api-{slugify(name)}">{html.escape(m.group(1))}</h3>', md, count=1, flags=re.M)
        cell.metadata['tags'] = ['hide-input']
        cell.outputs = [dict(output_type='display_data', metadata={}, data={'text/markdown': md})]
    procs = [P.populate_language, P.add_show_docs, P.strip_ansi, P.hide_line, P.filter_stream_, P.rm_header_dash,
             P.clean_show_doc, render_show_docs, P.rm_export, P.clean_magics, P.hide_, P.add_links, P.strip_hidden_metadata]
    NBProcessor(nb=nb, procs=procs).process()
    rewrite = _link_rewriter(depth, urlmap)
    cells, titled = [], False
    for c in nb.cells:
        if c.cell_type == 'markdown' and not titled and (m := re.match(r'\s*# (.+)\n?', c.source)):
            # the title as HTML: shown, but not a contents entry that would clash with a `## train` section's id
            c.source = f'<h1 class="nb-title">{html.escape(m.group(1).strip())}</h1>\n\n' + c.source[m.end():].lstrip()
            titled = True
        if c.cell_type == 'code':
            d = c.directives_
            if d.get('echo:', [''])[0].lower() == 'false': c.metadata['jupyter'] = {'source_hidden': True}; c.metadata['tags'] = ['hide-input']
            if d.get('output:', [''])[0].lower() == 'false': c.outputs = []
            c.source = re.sub(r'^#\|.*\n?', '', c.source, flags=re.M)
            if not c.source.strip() and not c.get('outputs'): continue
            for o in c.get('outputs', []):
                if 'data' in o and 'text/markdown' in o['data']:
                    v = o['data']['text/markdown']
                    o['data']['text/markdown'] = rewrite(''.join(v) if isinstance(v, list) else v)
        elif c.cell_type == 'markdown':  # code or a link in a heading leaves an empty entry in mkdocs-jupyter's page contents
            c.source = re.sub(r'\]\(([^):\s]+)\.ipynb(#[^)]*)?\)', r'](\1.html\2)', c.source)  # notebook links -> pages, as Quarto does
            c.source = re.sub(r'^(#+ .*)$', lambda m: re.sub(r'\[`([^`]+)`\]\([^)]*\)', r'\1', m.group(1)).replace('`', ''), rewrite(c.source), flags=re.M)
        cells.append(c)
    nb.cells = cells
    dst.parent.mkdir(parents=True, exist_ok=True)
    write_nb(nb, dst)

# ---------------------------------------------------------------- the site
def build(out: Path, stage: Path = ROOT/'_build'/'docs', quiet=False):
    t0 = time.time()
    say = (lambda *a: None) if quiet else (lambda *a: print('>>', *a, flush=True))
    if stage.exists(): shutil.rmtree(stage)
    docs = stage/'docs'; docs.mkdir(parents=True)
    cfg = _settings()
    nbs = notebooks()
    # pages of modules: module name -> (page path, chapter title)
    pages = {}
    for _, p in nbs:
        if (m := _default_exp(p)): pages[f'medtrain.{m}'] = (p.relative_to(NBS).with_suffix('.html').as_posix(), nb_title(json.loads(p.read_text())))
    api = api_pages(pages)
    urlmap = {}
    for modname, syms in modidx()['syms'].items():
        apipage = f'api/{modname.split(".", 1)[1]}.html'
        for url, _ in syms.values():
            urlmap[url] = apipage + '#' + _anchor(url)
            urlmap[url.split('#')[0]] = apipage
    api_text = '\n'.join(t for _, _, t in api)
    urlmap = {k: (v if '#' not in v or f'{{#{v.split("#")[1]}}}' in api_text else v.split('#')[0]) for k, v in urlmap.items()}
    for _, (modname, path, text) in enumerate(api):
        (docs/path).parent.mkdir(parents=True, exist_ok=True); (docs/path).write_text(text)
    say(f'API reference: {len(api)} module pages')
    (docs/'cli.md').write_text(cli_markdown())
    nav, sections = [], {}
    for section, p in nbs:
        rel = p.relative_to(NBS)
        process_notebook(p, docs/rel, len(rel.parts) - 1, urlmap)
        title = nb_title(json.loads(p.read_text())) or p.stem
        if section == 'Home': nav.append({'Home': rel.as_posix()})
        else: sections.setdefault(section, []).append({title if section != 'Chapters' else f'{p.stem.split("_")[0]} · {title}': rel.as_posix()})
    for s in ('Tutorials', 'Chapters', 'Report notebooks'):
        if s in sections: nav.append({s: sections[s]})
    nav.append({'API reference': [{modname: path.as_posix()} for modname, path, _ in api]})
    nav.append({'CLI reference': 'cli.md'})
    say(f'{len(nbs)} notebooks processed')
    (docs/'stylesheets').mkdir()
    (docs/'stylesheets'/'extra.css').write_text(EXTRA_CSS)
    site = site_settings()
    for css in site['css']: shutil.copy(css, docs/'stylesheets'/css.name)   # the stylesheets Quarto's site uses, too
    config = {
        'site_name': site['title'], 'site_description': site['description'], 'site_url': '',
        'docs_dir': 'docs', 'site_dir': str(out.resolve()), 'use_directory_urls': False, 'strict': False,
        'theme': {'name': 'material', 'font': False, 'language': 'en',
                  'features': ['navigation.sections', 'navigation.top', 'search.highlight', 'search.suggest', 'toc.follow'],
                  'palette': {'primary': 'indigo', 'accent': 'indigo'}},
        'extra_css': ['stylesheets/extra.css'] + [f'stylesheets/{css.name}' for css in site['css']],
        'markdown_extensions': ['attr_list', 'tables', 'admonition', 'toc', 'pymdownx.superfences'],
        'plugins': (['search'] if site['search'] else []) + [{'mkdocs-jupyter': {'execute': False, 'include_source': False, 'include_requirejs': False,
                                                  'ignore_h1_titles': False, 'remove_tag_config': {'remove_input_tags': ['hide-input']}}}],
        'nav': nav,
        'extra': {'generator': False, 'social': []},
        'copyright': f"{cfg['copyright']} · source: <a href=\"{site['repo_url']}\">{site['repo_url']}</a>",
    }
    (stage/'mkdocs.yml').write_text(json.dumps(config, indent=1))  # JSON is YAML
    say('mkdocs build')
    if out.exists(): shutil.rmtree(out)
    r = subprocess.run([str(Path(sys.executable).parent/'mkdocs'), 'build', '-q', '-f', str(stage/'mkdocs.yml')],
                       cwd=stage, capture_output=True, text=True)
    if r.returncode: sys.exit(f'mkdocs build failed:\n{r.stdout}\n{r.stderr}')
    remote = remote_assets(out)
    if remote: sys.exit('pages load remote assets (the site must work offline):\n' + '\n'.join(remote[:20]))
    n_links, broken = check_links(out)
    if broken: sys.exit(f'{len(broken)} broken internal links:\n' + '\n'.join(broken[:50]))
    n = len(list(out.rglob('*.html')))
    say(f'site: {out} ({n} HTML pages, {n_links} internal links checked, none broken) in {time.time() - t0:.1f} s')
    return out

EXTRA_CSS = """.md-source-link { float: right; font-size: smaller; }
.jupyter-wrapper .jp-InputPrompt, .jupyter-wrapper .jp-OutputPrompt { display: none !important; }
"""

def remote_assets(site: Path):
    "src=/href= of scripts, styles, images and iframes that point off the machine (links to other sites are fine)."
    bad = []
    tag_re = re.compile(r'<(script|link|img|iframe|source|video|audio)\b[^>]*>', re.I)
    for f in site.rglob('*.html'):
        for m in tag_re.finditer(f.read_text(errors='replace')):
            tag = m.group(0)
            if m.group(1).lower() == 'link' and not re.search(r'rel=["\']?(stylesheet|preload|icon|modulepreload)', tag): continue
            for u in re.findall(r'(?:src|href)=["\']([^"\']+)', tag):
                if re.match(r'(https?:)?//', u): bad.append(f'{f.relative_to(site)}: {html.unescape(u)}')
    return bad

class _Refs(HTMLParser):
    "Collects element ids and the local URLs a page refers to (href/src)."
    def __init__(self):
        super().__init__(); self.ids, self.refs = set(), []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in ('id', 'name'):
            if a.get(k) and (k == 'id' or tag == 'a'): self.ids.add(a[k])
        for k in ('href', 'src'):
            if a.get(k) is not None: self.refs.append((tag, a[k]))

def check_links(site: Path):
    "Every local href/src of every page must name an existing file and, with a #fragment, an existing id there."
    site = Path(site).resolve()
    parsed = {}
    def parse(f):
        if f not in parsed:
            p = _Refs(); p.feed(f.read_text(errors='replace')); parsed[f] = p
        return parsed[f]
    broken, n = [], 0
    for page in sorted(site.rglob('*.html')):
        for tag, ref in parse(page).refs:
            u = urlsplit(ref)
            if u.scheme or u.netloc or ref.startswith(('mailto:', 'javascript:', 'data:')): continue
            n += 1
            base = site if u.path.startswith('/') else page.parent  # absolute paths (404.html): the site served at its root
            target = page if not u.path else (base/unquote(u.path).lstrip('/')).resolve()
            if target.is_dir(): target = target/'index.html'
            if not target.exists() or site not in (target, *target.parents):
                broken.append(f'{page.relative_to(site)}: {ref} (no such file)'); continue
            if u.fragment and target.suffix == '.html' and unquote(u.fragment) not in parse(target).ids:
                broken.append(f'{page.relative_to(site)}: {ref} (no id "{unquote(u.fragment)}")')
    return n, broken

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', type=Path, default=ROOT/_settings().get('doc_path', '_docs'), help="the site (default: settings.ini's doc_path)")
    ap.add_argument('--stage', type=Path, default=ROOT/'_build'/'docs', help="staging folder for processed notebooks and mkdocs.yml")
    a = ap.parse_args()
    build(a.out, a.stage)
