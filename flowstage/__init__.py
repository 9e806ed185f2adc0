"""flowstage: replay Calico flow logs against staged policies and see what promotion would break.

The public Python API lives here; the `flowstage` command is a thin skin over it.
"""

__version__ = "0.1.0"
