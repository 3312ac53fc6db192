"""Password hashes with argon2id (argon2-cffi), behind the domain's PasswordHasher."""

from __future__ import annotations

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["Argon2Hasher"]


class Argon2Hasher:
    def __init__(self, *, time_cost: int = 3, memory_cost: int = 65536, parallelism: int = 2):
        self._ph = _Argon2(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)

    def hash(self, password: str) -> str:
        return self._ph.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._ph.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
