"""Pydantic request and response models, split by role (``…Create`` in, ``…Public`` out).

Input models forbid unknown fields and take numbers and booleans strictly (``false`` is not a
number). Output models carry pseudonymous ids only: no name or identity number is a field of
any response.
"""
