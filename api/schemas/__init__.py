"""The API's contract: what each endpoint takes (``...In``, ``...Update``) and returns (``...Out``).

Inputs forbid unknown fields (a typo is reported, not ignored) and bound every string to its column, so bad input
is a 422 naming the field rather than a database error.
"""
