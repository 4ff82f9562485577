"""Who may join a room: the bearer of a valid, unexpired access token of an active staff user."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

MAX_TOKEN_CHARS = 4096


class RoomRefused(Exception):
    """The token does not let its bearer in; the message says why, without leaking details."""


def staff_user_for_token(token: object) -> AbstractBaseUser:
    """Verify ``token`` (signature with the pinned algorithm, ``exp`` required, access type)."""
    if not isinstance(token, str) or not token.strip() or len(token) > MAX_TOKEN_CHARS:
        raise RoomRefused("Token ausente ou malformado.")
    try:
        # simplejwt decodes with settings.SIMPLE_JWT["ALGORITHM"] only (so "alg: none" and other
        # algorithms are refused) and refuses a token without "exp" or past it.
        access = AccessToken(token)
    except TokenError as exc:
        raise RoomRefused("Token inválido ou expirado.") from exc
    user_id = access.get(api_settings.USER_ID_CLAIM)
    user = get_user_model().objects.filter(**{api_settings.USER_ID_FIELD: user_id}).first()
    if user is None or not user.is_active:
        raise RoomRefused("Token inválido ou expirado.")
    if not user.is_staff:
        raise RoomRefused("Apenas a equipe da loja pode entrar nesta sala.")
    return user
