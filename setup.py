"""Build configuration beyond pyproject.toml: the optional C extension.

``kumocore.mail._crlfscan`` is reception's one-pass CRLF and line-length check
(``kumocore/mail/_crlfscan.c``). It is optional: without a C compiler the build goes
on without it, and ``kumocore.mail.crlf`` falls back to NumPy, then to plain Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "kumocore.mail._crlfscan",
            ["kumocore/mail/_crlfscan.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
