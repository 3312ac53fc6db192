"""delegauth: delegated access to Client Areas, decided by Casbin, served over AuthZEN."""

__version__ = "0.1.0"
