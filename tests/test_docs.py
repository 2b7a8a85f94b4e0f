"""The documentation site (`make docs`): it builds offline from the notebooks, every chapter and tutorial has a page,
every public name and CLI subcommand is documented, no internal link is broken, and the pages render in Chromium."""
import argparse, functools, http.server, importlib, importlib.util, json, os, re, shutil, subprocess, sys, tempfile, threading
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
_spec = importlib.util.spec_from_file_location('medtrain_docs', ROOT/'tools'/'docs.py')
docs = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(docs)

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "The site built the way `make docs` builds it without Quarto (a subprocess running tools/docs.py)."
    tmp = tmp_path_factory.mktemp('docs')
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'docs.py'), '--out', str(tmp/'site'), '--stage', str(tmp/'stage')],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"tools/docs.py failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert 'none broken' in r.stdout, r.stdout
    return tmp/'site'

def test_every_notebook_has_a_page_in_pipeline_order(site):
    numbered = sorted(p for p in NBS.glob('*.ipynb') if docs.is_numbered(p))
    tutorials = sorted((NBS/'tutorials').glob('*.ipynb'))
    assert len(numbered) >= 10 and len(tutorials) >= 2, (numbered, tutorials)
    for p in numbered + tutorials + [NBS/'index.ipynb']:
        page = site/p.relative_to(NBS).with_suffix('.html')
        assert page.exists(), f"no page for {p.name}"
        title = docs.nb_title(json.loads(p.read_text()))
        assert title and title in page.read_text(), f"{page.name} does not show the notebook's title {title!r}"
    # the generated navigation lists the chapters in file (= pipeline) order, after the tutorials
    home = (site/'index.html').read_text()
    pos = [home.find(f'href="{p.stem}.html"') for p in numbered]
    assert -1 not in pos and pos == sorted(pos), "chapters missing from the navigation or out of order"
    assert home.find('tutorials/quickstart.html') < pos[0]

def test_home_is_the_readme_notebook(site):
    "index.ipynb is both README.md and the home page."
    home = re.sub(r'<[^>]+>', '', (site/'index.html').read_text())
    for line in ('The two commands', 'Config reference', 'make docs', 'make lab', 'tools/run_nbs.py'):
        assert line in home, line

def test_no_broken_internal_links(site):
    n, broken = docs.check_links(site)
    assert n > 500, f"only {n} internal links found: the checker is not reading the pages"
    assert not broken, '\n'.join(broken)

def test_link_checker_catches_broken_links(tmp_path):
    (tmp_path/'a.html').write_text('<p id="here"><a href="b.html#there">x</a> <a href="#here">ok</a> <img src="gone.png"></p>')
    (tmp_path/'b.html').write_text('<h1 id="elsewhere">b</h1>')
    n, broken = docs.check_links(tmp_path)
    assert n == 3 and len(broken) == 2 and 'no id "there"' in broken[0] and 'gone.png' in broken[1], broken

def test_site_loads_nothing_from_the_network(site):
    assert docs.remote_assets(site) == []
    index = json.loads((site/'search'/'search_index.json').read_text())
    assert any('progressive' in d['text'].lower() for d in index['docs']), "offline search index lacks the chapters' text"

def test_api_reference_documents_every_public_name(site):
    "Every name in every module's __all__ has an entry (anchor, heading, signature or value) on its module's page."
    from medtrain._modidx import d
    n = 0
    for modname in d['syms']:
        mod = importlib.import_module(modname)
        names = getattr(mod, '__all__', [])
        if not names: continue
        page = (site/'api'/f'{modname.split(".", 1)[1]}.html').read_text()
        for nm in names:
            assert f'id="{nm.lower()}"' in page, f"{modname}.{nm} is not in the API reference"
            n += 1
    assert n >= 50, n
    train = (site/'api'/'train.html').read_text()
    assert 'def train(' in re.sub(r'<[^>]+>', '', train), "signature missing"
    import html
    from medtrain.config import TrainConfig
    config = html.unescape(re.sub(r'<[^>]+>', '', (site/'api'/'config.html').read_text()))
    described = [(k, f.description) for k, f in TrainConfig.model_fields.items() if f.description]
    assert described and all(d.replace('`', '') in config for _, d in described), "a config section's field table (key, default, description) is missing"

def _commands(p, path=('medtrain',)):
    yield path, p
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sp in a.choices.items(): yield from _commands(sp, path + (name,))

def test_cli_reference_is_the_parsers_help(site):
    "Every subcommand, however deep, with its usage and options, taken from the parser, not copied by hand."
    from medtrain.cli import build_parser
    page = (site/'cli.html').read_text()
    text = re.sub(r'<[^>]+>', '', page)
    cmds = list(_commands(build_parser()))
    assert len(cmds) >= 6
    for path, p in cmds:
        assert f'id="{"-".join(path)}"' in page, f"{' '.join(path)} missing from the CLI reference"
        assert f'usage: {" ".join(path)}' in text
        for a in p._actions:
            for opt in a.option_strings: assert opt in text, f"{' '.join(path)} {opt} missing"

def test_notebook_plots_render_inline(site):
    "Image outputs that the notebooks keep appear in their pages as inline images."
    n = 0
    for p in [NBS/'index.ipynb', *NBS.glob('*_*.ipynb'), *(NBS/'tutorials').glob('*.ipynb')]:
        images = sum('image/png' in o.get('data', {}) for c in json.loads(p.read_text())['cells'] for o in c.get('outputs', []))
        if not images: continue
        page = (site/p.relative_to(NBS).with_suffix('.html')).read_text()
        assert page.count('src="data:image/png;base64') >= images, f"{p.name}: {images} plots, fewer in its page"
        n += images
    assert n >= 1, "no notebook keeps a plot (tutorials/quickstart.ipynb should)"

# ---------------------------------------------------------------- the browser
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass

@pytest.fixture(scope='module')
def browser():
    "Headless Chromium through selenium and Debian's chromedriver (`make browser` installs both)."
    chromium, driver = shutil.which('chromium') or shutil.which('chromium-browser'), shutil.which('chromedriver')
    assert chromium and driver, "chromium and chromedriver are required for the browser tests: run `make browser` (apt)"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    profile = tempfile.mkdtemp(prefix='medtrain-chromium-')
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
              '--disable-sync', '--disable-dev-shm-usage', f'--user-data-dir={profile}', '--window-size=1280,900'):
        opts.add_argument(a)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    d = webdriver.Chrome(options=opts, service=Service(driver))
    yield d
    d.quit(); shutil.rmtree(profile, ignore_errors=True)

@pytest.fixture(scope='module')
def served(site):
    "The site over HTTP on a loopback port, as a user previews it (search runs in a web worker, which file:// blocks)."
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_port}'
    srv.shutdown(); srv.server_close()

SHOTS = Path(os.environ.get('MEDTRAIN_SCREENSHOTS', tempfile.gettempdir()))/'medtrain-docs-screenshots'

@pytest.mark.parametrize('page, expect', [('index.html', 'The two commands'), ('api/train.html', 'build_learner')])
def test_page_renders_in_chromium(browser, served, page, expect):
    from PIL import Image, ImageStat
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    browser.get_log('browser')  # drop what earlier pages logged
    browser.get(f'{served}/{page}')
    WebDriverWait(browser, 20).until(lambda d: d.execute_script('return document.readyState') == 'complete')
    assert expect in browser.find_element(By.TAG_NAME, 'body').text
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS/(page.replace('/', '_') + '.png')
    browser.save_screenshot(str(shot))
    im = Image.open(shot).convert('L')
    stat = ImageStat.Stat(im)
    assert im.size[0] >= 800 and stat.stddev[0] > 20, f"{shot}: looks blank (pixel stddev {stat.stddev[0]:.1f})"
    # material styles the page: the header bar is coloured, so the top rows are not white
    assert ImageStat.Stat(im.crop((0, 0, im.size[0], 40))).mean[0] < 200, f"{shot}: the theme's header is missing"
    errors = [e for e in browser.get_log('browser') if e['level'] in ('SEVERE', 'ERROR')]
    assert not errors, f"console errors on {page}: {errors}"

def test_offline_search_finds_a_chapter(browser, served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    browser.get(f'{served}/index.html')
    box = WebDriverWait(browser, 20).until(lambda d: d.find_element(By.CSS_SELECTOR, 'input.md-search__input'))
    browser.find_element(By.CSS_SELECTOR, 'label.md-search__icon, .md-search__input').click()
    box.send_keys('progressive')
    hits = WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, '.md-search-result__item'))
    assert any('augment' in h.find_element(By.TAG_NAME, 'a').get_attribute('href') for h in hits), [h.text for h in hits]
    errors = [e for e in browser.get_log('browser') if e['level'] in ('SEVERE', 'ERROR')]
    assert not errors, errors

def test_quarto_settings_have_one_source(tmp_path):
    "The top-level _quarto.yml is the only copy: nbdev reads it through the nbs/ link, tools/docs.py reads it directly."
    import subprocess as sp
    top, nbs_link = ROOT/'_quarto.yml', NBS/'_quarto.yml'
    assert top.is_file() and not top.is_symlink(), "the top-level _quarto.yml is the real file"
    assert nbs_link.is_symlink() and nbs_link.resolve() == top.resolve(), "nbs/_quarto.yml (where nbdev looks) must link to ../_quarto.yml"
    tracked = sp.run(['git', 'ls-files', '-s', '--', '*_quarto.yml'], cwd=ROOT, capture_output=True, text=True).stdout.splitlines()
    copies = [l.split('\t')[1] for l in tracked if not l.startswith('120000')]   # 120000: a symlink
    assert copies == ['_quarto.yml'], f"a second copy of the Quarto settings to drift: {copies}"
    # nbdev finds it where it looks: <nbs_path>/_quarto.yml
    from nbdev.config import get_config
    assert (get_config(path=ROOT).nbs_path/'_quarto.yml').resolve() == top.resolve()
    # tools/docs.py takes the site settings from it: a changed title, stylesheet or search setting changes the site
    q = tmp_path/'_quarto.yml'
    q.write_text("website:\n  title: Other title\n  navbar: {search: false}\nformat:\n  html: {css: styles.css}\n")
    s = docs.site_settings(q)
    assert s['title'] == 'Other title' and s['search'] is False and s['css'] == [NBS/'styles.css']
    s = docs.site_settings()
    assert [c.name for c in s['css']] == ['styles.css'] and all(c.is_file() for c in s['css'])

def test_site_uses_the_quarto_stylesheet(site):
    css = docs.site_settings()['css']
    assert css, "_quarto.yml names no stylesheet"
    page = (site/'index.html').read_text()
    for c in css:
        assert f'stylesheets/{c.name}' in page, f"the site does not load {c.name} from _quarto.yml"
        assert (site/'stylesheets'/c.name).read_text() == c.read_text()
