"The registry through the CLI: register a trained run, promote, roll back, and use NAME@STAGE where a model path goes."
import json

from conftest import medtrain_inproc as cli_inproc


def test_register_promote_rollback_and_references(trained_run, tmp_path, monkeypatch):
    reg = ['--registry', tmp_path/'reg']
    for _ in range(2): cli_inproc('registry', 'register', trained_run, '--name', 'lesions', '--no-reference', *reg, check=True)
    assert cli_inproc('registry', 'promote', 'lesions', '1', *reg, check=True).stdout.strip() == 'lesions@v1 is now production'
    cli_inproc('registry', 'promote', 'lesions', '2', '--stage', 'production', *reg, check=True)
    listing = cli_inproc('registry', 'list', *reg, check=True).stdout
    assert 'archived' in listing and 'production' in listing
    show = json.loads(cli_inproc('registry', 'show', 'lesions@production', *reg, check=True).stdout)
    assert show['version'] == 2 and show['metrics'] == json.loads((trained_run/'metrics.json').read_text())
    assert show['git_commit'] == json.loads((trained_run/'run.json').read_text())['git_commit']
    assert 'lesions@v1 is production again' in cli_inproc('registry', 'rollback', 'lesions', *reg, check=True).stdout
    # a registry reference is accepted wherever a model path is: evaluate the production model by name
    monkeypatch.setenv('MEDTRAIN_REGISTRY', str(tmp_path/'reg'))
    r = cli_inproc('evaluate', '--model-path', 'lesions@production', '--test-data', trained_run/'test.csv', '--out', tmp_path/'ev', '--quiet', check=True)
    assert json.loads((tmp_path/'ev'/'metrics.json').read_text())['n'] == len(open(trained_run/'test.csv').readlines()) - 1
    bad = cli_inproc('evaluate', '--model-path', 'lesions@staging', '--test-data', trained_run/'test.csv')
    assert bad.returncode == 2 and 'no version of lesions is in stage staging' in bad.stderr and 'Traceback' not in bad.stderr
    bad = cli_inproc('registry', 'promote', 'lesions', '7', *reg)
    assert bad.returncode == 2 and 'lesions@7: no such version' in bad.stderr
