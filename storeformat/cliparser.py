"""The argument parser every r3d command uses: option prefixes are not taken as abbreviations
(`--n-epoch` is a typo, not `--n-epochs`), an unknown option gets a "did you mean" suggestion,
and --help shows each option's default."""
import argparse
import difflib


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions kept as written (examples stay on their lines); '(default: X)' appended to
    each option's help that does not already speak of its default."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or default is None or default is argparse.SUPPRESS
                or isinstance(default, bool) or default == [] or not action.option_strings):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {shown})" if text else f"default: {shown}"


class Parser(argparse.ArgumentParser):
    """argparse.ArgumentParser with allow_abbrev off, defaults in --help and suggestions for
    unknown options; its subcommand parsers are Parsers too."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_args(self, args=None, namespace=None):
        args, extras = self.parse_known_args(args, namespace)
        if extras:
            options = sorted(self._all_options())
            hints = []
            for arg in extras:
                close = difflib.get_close_matches(arg.split("=", 1)[0], options, n=1, cutoff=0.6)
                if arg.startswith("-") and close:
                    hints.append(f"{arg}: did you mean {close[0]}?")
            self.error(f"unrecognized arguments: {' '.join(extras)}"
                       + (f" ({'; '.join(hints)})" if hints else ""))
        return args

    def _all_options(self):
        """Every option string of this parser and of its subcommands' parsers."""
        found, todo = set(), [self]
        while todo:
            parser = todo.pop()
            found.update(parser._option_string_actions)
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    todo.extend(action.choices.values())
        return found
