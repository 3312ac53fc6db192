"""Compose verification, invitation, access-ending and access-request emails in English or
Spanish.

A time is written in the recipient's time zone, named (the zone their browser last
reported, domain.time_zones), or in UTC, named, when it is not known: an invitee without
an account yet, a user who has not signed in since.

Every link carries the mail's language (``lang=``), so the pages it opens, sign-in on the
way included, speak it whatever the browser's language (the pages keep ``?lang=`` in a
cookie). The access-ending reminder links to that area's home, which shows the end.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from string import Template
from typing import Any
from urllib.parse import quote, urlencode

from delegauth.domain.access_requests import defang
from delegauth.domain.catalogue import Catalogue, CatalogueSource, PermissionSet, as_source
from delegauth.domain.entities import AccessRequest, Area, Grant, Invitation, OutgoingMail, User
from delegauth.domain.time_zones import shown_in

__all__ = ["MailComposer"]

_TEXT: dict[str, dict[str, Any]] = {
    "en": {
        "verify_subject": "Confirm your email address",
        "verify_text": Template(
            "Hello $name,\n\nConfirm your email address by opening this link:\n\n$link\n\n"
            "If you did not sign up, ignore this message.\n"
        ),
        "invite_subject": Template("Invitation to manage the Client Area “$area”"),
        "invite_text": Template(
            "Hello,\n\n$inviter ($inviter_email) invited you to manage the Client Area "
            '"$area" with these permissions:\n\n$permissions\n\n'
            "${until}The link expires on $expires. Accept the invitation here:\n\n$link\n\n"
            "If you have no account yet, you will be asked to sign up with this email address.\n"
        ),
        "all": "All permissions",
        "invite_until": Template("The access ends on $until.\n\n"),
        "ending_subject": Template("Your access to “$area” ends on $until"),
        "ending_text": Template(
            'Hello $name,\n\nYour access to the Client Area "$area" ends on $until.\n\n'
            "If you still need it, ask $owner ($owner_email) to extend it.\n\n$link\n"
        ),
        "ask_subject": Template("Access request for the Client Area “$area”"),
        "ask_text": Template(
            "Hello,\n\n$requester asks for these permissions in your Client Area "
            '"$area":\n\n$permissions\n\n${message}'
            "Approve all of them, some of them, or decline here:\n\n$link\n\n"
            "If you do not know this person, decline or ignore it: nothing changes until you"
            " approve.\n"
        ),
        "ask_message": "Their message:",
        "answer_subject": Template("Your access request for “$area”: $outcome"),
        "approved": "approved",
        "answer_until": Template("This access ends on $until.\n\n"),
        "declined": "declined",
        "answer_approved": Template(
            'Hello,\n\nYour request for access to the Client Area "$area" was approved.'
            " You now also hold:\n\n$permissions\n\n${until}See your access requests here:"
            "\n\n$link\n"
        ),
        "answer_declined": Template(
            'Hello,\n\nYour request for access to the Client Area "$area" was declined.\n\n'
            "See your access requests here:\n\n$link\n"
        ),
    },
    "es": {
        "verify_subject": "Confirma tu dirección de correo",
        "verify_text": Template(
            "Hola $name:\n\nConfirma tu dirección de correo abriendo este enlace:\n\n$link\n\n"
            "Si no te has registrado, ignora este mensaje.\n"
        ),
        "invite_subject": Template("Invitación para gestionar el Área de Cliente «$area»"),
        "invite_text": Template(
            "Hola:\n\n$inviter ($inviter_email) te ha invitado a gestionar el Área de Cliente "
            '"$area" con estos permisos:\n\n$permissions\n\n'
            "${until}El enlace caduca el $expires. Acepta la invitación aquí:\n\n$link\n\n"
            "Si todavía no tienes cuenta, se te pedirá que te registres con esta dirección.\n"
        ),
        "all": "Todos los permisos",
        "invite_until": Template("El acceso termina el $until.\n\n"),
        "ending_subject": Template("Tu acceso a «$area» termina el $until"),
        "ending_text": Template(
            'Hola $name:\n\nTu acceso al Área de Cliente "$area" termina el $until.\n\n'
            "Si todavía lo necesitas, pide a $owner ($owner_email) que lo amplíe.\n\n$link\n"
        ),
        "ask_subject": Template("Solicitud de acceso al Área de Cliente «$area»"),
        "ask_text": Template(
            "Hola:\n\n$requester solicita estos permisos en tu Área de Cliente "
            '"$area":\n\n$permissions\n\n${message}'
            "Aprueba todos, algunos, o rechaza la solicitud aquí:\n\n$link\n\n"
            "Si no conoces a esta persona, recházala o ignórala: nada cambia hasta que la"
            " apruebes.\n"
        ),
        "ask_message": "Su mensaje:",
        "answer_subject": Template("Tu solicitud de acceso a «$area»: $outcome"),
        "approved": "aprobada",
        "answer_until": Template("Este acceso termina el $until.\n\n"),
        "declined": "rechazada",
        "answer_approved": Template(
            'Hola:\n\nTu solicitud de acceso al Área de Cliente "$area" ha sido aprobada.'
            " Ahora también tienes:\n\n$permissions\n\n${until}Consulta tus solicitudes"
            " aquí:\n\n$link\n"
        ),
        "answer_declined": Template(
            'Hola:\n\nTu solicitud de acceso al Área de Cliente "$area" ha sido rechazada.'
            "\n\nConsulta tus solicitudes aquí:\n\n$link\n"
        ),
    },
}


class MailComposer:
    def __init__(self, catalogue: Catalogue | CatalogueSource, public_url: str) -> None:
        self._catalogue = as_source(catalogue)
        self._base = public_url.rstrip("/")

    def verification(self, user: User, token: str, return_to: str = "") -> OutgoingMail:
        """The verification mail; its link carries ``return_to`` (a page to come back to)."""
        t = _TEXT.get(user.locale, _TEXT["en"])
        query = [("token", token)]
        if return_to and return_to != "/":
            query.append(("return_to", return_to))
        link = self._link("/verify-email", user.locale, query)
        text = t["verify_text"].substitute(name=user.name or user.email, link=link)
        return OutgoingMail(
            to=user.email,
            subject=str(t["verify_subject"]),
            text=text,
            html=_html(text),
            kind="verification",
        )

    def invitation(
        self,
        invitation: Invitation,
        area: Area,
        inviter: User,
        token: str,
        locale: str,
        invitee: User | None = None,
    ) -> OutgoingMail:
        """The invitation mail in ``locale``; its subject names the Client Area by its
        account name (the inviter is named in the text). Times are in the zone of the
        ``invitee``'s account (UTC without one)."""
        t = _TEXT.get(locale, _TEXT["en"])
        zone = invitee.time_zone if invitee is not None else ""
        until = ""
        if invitation.valid_until is not None:
            until = t["invite_until"].substitute(until=shown_in(invitation.valid_until, zone))
        perms = self._listed(invitation.permissions, locale)
        link = self._link("/invitations/accept", locale, [("token", token)])
        values = {
            "inviter": inviter.name or inviter.email,
            "inviter_email": inviter.email,
            "area": area.name,
            "permissions": perms,
            "expires": shown_in(invitation.expires_at, zone),
            "until": until,
            "link": link,
        }
        text = t["invite_text"].substitute(values)
        subject = t["invite_subject"].substitute(values)
        return OutgoingMail(
            to=invitation.email,
            subject=subject[:255],
            text=text,
            html=_html(text),
            kind="invitation",
            headers={"Content-Language": locale},
        )

    def grant_ending(
        self, grant: Grant, area: Area, delegate: User, owner: User | None = None
    ) -> OutgoingMail:
        """The reminder that a delegate's access ends soon, in their language and time
        zone."""
        assert grant.valid_until is not None
        t = _TEXT.get(delegate.locale, _TEXT["en"])
        values = {
            "name": delegate.name or delegate.email,
            "area": area.name,
            "until": shown_in(grant.valid_until, delegate.time_zone),
            "owner": (owner.name or owner.email) if owner else "",
            "owner_email": owner.email if owner else "",
            "link": self._link(f"/areas/{area.id}", delegate.locale),
        }
        return OutgoingMail(
            to=delegate.email,
            subject=t["ending_subject"].substitute(values)[:255],
            text=t["ending_text"].substitute(values),
            html=_html(t["ending_text"].substitute(values)),
            kind="grant_ending",
            headers={"Content-Language": delegate.locale},
        )

    def access_request(
        self, request: AccessRequest, area: Area, requester: User, owner: User
    ) -> OutgoingMail:
        """To the owner, in their language: who asks (by verified address only: a name is
        whatever they typed), what, their message quoted and defanged, and the review link."""
        locale = owner.locale
        t = _TEXT.get(locale, _TEXT["en"])
        message = ""
        if request.message:
            quoted = "\n".join("> " + defang(line) for line in request.message.split("\n"))
            message = f"{t['ask_message']}\n\n{quoted}\n\n"
        values = {
            "requester": requester.email,
            "area": area.name,
            "permissions": self._listed(request.permissions, locale),
            "message": message,
            "link": self._link(f"/areas/{area.id}/access-requests/{request.id}", locale),
        }
        return OutgoingMail(
            to=owner.email,
            subject=t["ask_subject"].substitute(values)[:255],
            text=t["ask_text"].substitute(values),
            html=_html(t["ask_text"].substitute(values)),
            kind="access_request",
            headers={"Content-Language": locale},
        )

    def access_request_answered(
        self,
        request: AccessRequest,
        area: Area,
        requester: User,
        until: datetime | None = None,
    ) -> OutgoingMail:
        """To the requester, in their language: approved (with what, and until when in
        their time zone) or declined."""
        locale = requester.locale
        t = _TEXT.get(locale, _TEXT["en"])
        approved = request.granted is not None
        ends = ""
        if approved and until is not None:
            ends = t["answer_until"].substitute(until=shown_in(until, requester.time_zone))
        values = {
            "area": area.name,
            "outcome": t["approved" if approved else "declined"],
            "permissions": self._listed(request.granted, locale) if request.granted else "",
            "until": ends,
            "link": self._link("/access-requests", locale),
        }
        text = t["answer_approved" if approved else "answer_declined"].substitute(values)
        return OutgoingMail(
            to=requester.email,
            subject=t["answer_subject"].substitute(values)[:255],
            text=text,
            html=_html(text),
            kind="access_request_answer",
            headers={"Content-Language": locale},
        )

    def _link(self, path: str, locale: str, query: list[tuple[str, str]] | None = None) -> str:
        """A link to one of our pages, in the mail's language (``lang`` last)."""
        lang = locale if locale in _TEXT else "en"
        return f"{self._base}{path}?" + urlencode([*(query or []), ("lang", lang)], quote_via=quote)

    def _listed(self, perms: PermissionSet, locale: str) -> str:
        """One line per permission, by its label in ``locale``, in catalogue order, with the
        resources a single-resource one is limited to."""
        if perms.all:
            return f"- {_TEXT.get(locale, _TEXT['en'])['all']}"
        catalogue = self._catalogue()
        lines = []
        for n in catalogue.names():
            ids = perms.resources(n)  # a permission on single resources names them
            if n in perms.names or ids:
                label = catalogue.get(n).label(locale)
                lines.append(f"- {label} ({', '.join(ids)})" if ids else f"- {label}")
        return "\n".join(lines)


def _html(text: str) -> str:
    """A minimal HTML alternative: escaped paragraphs, with links made clickable."""
    parts = []
    for para in text.strip().split("\n\n"):
        if para.startswith("http://") or para.startswith("https://"):
            url = escape(para, quote=True)
            parts.append(f'<p><a href="{url}">{url}</a></p>')
        else:
            parts.append("<p>" + escape(para).replace("\n", "<br>") + "</p>")
    return "<!doctype html><html><body>" + "".join(parts) + "</body></html>"
