"""The commands' parser: no abbreviations, a suggestion for a typo, defaults in --help."""
import pytest

from annotations.cli import main as annotate
from storeformat.cliparser import Parser
from training.eval_cli import build_parser as eval_parser


def _parser():
    p = Parser(prog="r3d-x")
    p.add_argument("--n-epochs", type=int, default=200, help="epochs to train")
    p.add_argument("--batch-size", type=int, default=128, help="clips per batch (default 128)")
    p.add_argument("--verbose", action="store_true", help="more logs")
    return p


def test_an_option_prefix_is_not_taken_for_the_option(capsys):
    with pytest.raises(SystemExit) as e:
        _parser().parse_args(["--n-epoch", "3"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --n-epoch 3" in err and "(--n-epoch: did you mean --n-epochs?)" in err
    assert err.count("\n") == 1 and err.startswith("r3d-x: error: ")  # one line, no usage


def test_a_typo_in_a_subcommand_gets_a_suggestion(capsys):
    with pytest.raises(SystemExit):
        annotate(["stats", "x.json", "--jsno"])
    assert "(--jsno: did you mean --json?)" in capsys.readouterr().err


def test_help_shows_defaults_once(capsys):
    text = _parser().format_help()
    assert "epochs to train (default: 200)" in text
    assert "(default 128)" in text and "(default: 128)" not in text
    assert "more logs (default" not in text
    assert "(default: 1 5)" in eval_parser().format_help()
