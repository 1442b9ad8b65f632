"""The one user-facing error type: a message, a hint that names the fix, an exit code."""

from __future__ import annotations


class SnnCompileError(Exception):
    """A failure the user can act on. Raised anywhere, caught once by the CLI."""

    def __init__(self, message: str, hint: str = "", exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


# Exit codes, stable for scripts.
EXIT_USAGE = 2          # bad arguments or input files
EXIT_UNSUPPORTED = 3    # model uses something we cannot compile
EXIT_UNSAFE = 4         # checkpoint would execute untrusted code
EXIT_BACKEND = 5        # the target failed or timed out
EXIT_MISMATCH = 6       # --check-equivalence found differing spikes
EXIT_PIPE = 141         # stdout was closed or full (128 + SIGPIPE, as a shell reports it)
