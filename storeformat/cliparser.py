"""The argument parser every r3d command uses: option prefixes are not taken as abbreviations
(`--n-epoch` is a typo, not `--n-epochs`), an unknown option gets a "did you mean" suggestion,
an error is one line, and --help shows each option's default."""
import argparse
import copy
import difflib
import sys


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions kept as written (examples stay on their lines); '(default: X)' appended to
    each option's help that does not already speak of its default, and given to an option
    that has no help."""

    def _format_action(self, action):
        if action.help is None and self._shows_default(action):
            action = copy.copy(action)
            action.help = f"(default: {self._default_text(action)})"
        return super()._format_action(action)

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text.lower() or not self._shows_default(action):
            return text
        return f"{text} (default: {self._default_text(action)})"

    @staticmethod
    def _shows_default(action) -> bool:
        default = action.default
        return bool(action.option_strings) and not (
            default is None or default is argparse.SUPPRESS or isinstance(default, bool)
            or default == [])

    @staticmethod
    def _default_text(action) -> str:
        default = action.default
        text = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return text.replace("%", "%%")


class Parser(argparse.ArgumentParser):
    """argparse.ArgumentParser with allow_abbrev off, defaults in --help and suggestions for
    unknown options; its subcommand parsers are Parsers too."""

    #: Words after every error message, e.g. " (see r3d-train -h)".
    error_note = ""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_args(self, args=None, namespace=None):
        argv = list(sys.argv[1:] if args is None else args)
        for parser in self._family():  # a subcommand's parser reports errors on its own
            parser._argv = argv
        args, extras = self.parse_known_args(argv, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return args

    def error(self, message):
        """One line on stderr and exit status 2 (no usage block), with a suggestion for each
        unknown option given (also when another error, such as a missing argument, came
        first)."""
        self.exit(2, f"{self.prog}: error: {message}{self._hints()}{self.error_note}\n")

    def _hints(self) -> str:
        options = sorted(self._all_options())
        hints = []
        for arg in getattr(self, "_argv", ()):
            name = str(arg).split("=", 1)[0]
            if name.startswith("--") and not self.is_option(name):
                close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
                if close:
                    hints.append(f"{name}: did you mean {close[0]}?")
        return f" ({'; '.join(hints)})" if hints else ""

    def is_option(self, name) -> bool:
        """Whether `name` is an option of this parser or of a subcommand's."""
        return name in self._all_options()

    def _family(self) -> list:
        """This parser and its subcommands' parsers, at every level."""
        found, todo = [], [self]
        while todo:
            parser = todo.pop()
            found.append(parser)
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    todo.extend(action.choices.values())
        return found

    def _all_options(self):
        """Every option string of this parser and of its subcommands' parsers."""
        return {option for parser in self._family() for option in parser._option_string_actions}
