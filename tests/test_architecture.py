"""Structure checks of the package: every default is defined once (the config), not re-typed where it is used."""
import re
from pathlib import Path
import pytest

PKG = Path(__file__).resolve().parents[1]/'medtrain'

def _sources():
    return {p.name: p.read_text() for p in sorted(PKG.glob('*.py')) if p.name != '_modidx.py'}

def _count(pattern: str) -> dict:
    return {name: n for name, text in _sources().items() if (n := len(re.findall(pattern, text)))}

# Each default that used to be re-typed in several modules, as a regex matching every spelling of it
_ONCE = {
    'max_pixels 89.5 M': r'\b89_?478_?485\b',
    'upload limit 20 MiB': r'\b20\s*\*\s*(1024\s*\*\s*1024|2\s*\*\*\s*20)\b|\b20_?971_?520\b',
    'serving max_pixels 40 M': r'\b40_?000_?000\b',
    "backends ['onnx', 'torch']": r"""\[\s*['"]onnx['"]\s*,\s*['"]torch['"]\s*\]""",
    'augment.max_rotate 20': r'\bmax_rotate\b[^\n,]{0,20}\b20(\.0)?\b',      # `max_rotate: float = Field(20.0` or `max_rotate=20.0`
    'augment.max_zoom 1.1': r'\bmax_zoom\b[^\n,]{0,20}\b1\.1\b',
    'augment.max_lighting 0.2': r'\bmax_lighting\b[^\n,]{0,20}\b0\.2\b',
    'evaluate n_boot 1000': r'\bn_boot\b[^\n,]{0,20}\b1000\b',        # EvalConfig's field; bootstrap_ci and the CLI read it
}

@pytest.mark.parametrize('pattern', list(_ONCE.values()), ids=list(_ONCE))
def test_every_default_is_defined_once(pattern):
    where = _count(pattern)
    assert sum(where.values()) <= 1, f"defined more than once under medtrain/: {where}"

def test_the_check_finds_a_retyped_default(tmp_path, monkeypatch):
    "The grep sees a copy: tune's old AUG_DEFAULTS line re-types augment.max_rotate next to the config's field."
    monkeypatch.setitem(globals(), 'PKG', tmp_path)
    (tmp_path/'config.py').write_text("max_rotate: float = Field(20.0, ge=0, le=180)\n")
    (tmp_path/'tune.py').write_text("AUG_DEFAULTS = dict(max_rotate=20.0, max_zoom=1.1, max_lighting=0.2)\n")
    assert sum(_count(_ONCE['augment.max_rotate 20']).values()) == 2
