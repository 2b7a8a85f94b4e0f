#!/usr/bin/env python
"""Generate README.md from nbs/index.ipynb without Quarto (nbdev_readme needs it, and it cannot be installed here).

Markdown cells are copied as they are; code cells become python blocks followed by their text outputs.
`python tools/readme.py` writes README.md; `python tools/readme.py --check` exits 1 when README.md is stale.
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "<!-- generated from nbs/index.ipynb by tools/readme.py (make readme); edit the notebook, not this file -->\n\n"

def render(nb_path=ROOT/'nbs'/'index.ipynb') -> str:
    parts = []
    for cell in json.loads(Path(nb_path).read_text())['cells']:
        src = ''.join(cell['source']).strip()
        if not src or src.startswith('#| hide'): continue
        if cell['cell_type'] == 'markdown': parts.append(src)
        elif cell['cell_type'] == 'code':
            parts.append(f"```python\n{src}\n```")
            text = ''.join(''.join(o.get('text', '') or o.get('data', {}).get('text/plain', '')) for o in cell.get('outputs', []))
            if text.strip(): parts.append(f"```\n{text.rstrip()}\n```")
    return HEADER + '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    new = render()
    if '--check' in sys.argv:
        if (ROOT/'README.md').read_text() != new: sys.exit("README.md differs from nbs/index.ipynb: run `make readme`")
    else: (ROOT/'README.md').write_text(new)
