"""The hosted pages' words, in English and Spanish."""

from __future__ import annotations

__all__ = ["TEXT", "t"]

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "signin.title": "Sign in",
        "signin.email": "Email",
        "signin.password": "Password",
        "signin.submit": "Sign in",
        "signin.no_account": "No account yet?",
        "signin.signup_link": "Sign up",
        "signin.failed": "The email or password is not right.",
        "signin.limited": "Too many failed attempts. Wait a few minutes and try again.",
        "signup.title": "Create your account",
        "signup.name": "Your name",
        "signup.submit": "Sign up",
        "signup.have_account": "Already have an account?",
        "chooser.title": "Choose a Client Area",
        "chooser.legend": "Which Client Area do you want to manage?",
        "chooser.submit": "Continue",
        "role.owner": "Owner",
        "role.delegate": "Delegate",
        "consent.title": "Allow access?",
        "consent.asks": "{client} asks to act for you in the Client Area you choose, with:",
        "consent.allow": "Allow",
        "consent.deny": "Deny",
        "error.title": "Something went wrong",
        "error.csrf": "The form expired. Go back and try again.",
        "error.area": "Choose one of your Client Areas.",
        "home.title": "Signed in",
        "home.as": "Signed in as {email}.",
        "signout": "Sign out",
    },
    "es": {
        "signin.title": "Iniciar sesión",
        "signin.email": "Correo electrónico",
        "signin.password": "Contraseña",
        "signin.submit": "Entrar",
        "signin.no_account": "¿Todavía no tienes cuenta?",
        "signin.signup_link": "Regístrate",
        "signin.failed": "El correo o la contraseña no son correctos.",
        "signin.limited": "Demasiados intentos fallidos. Espera unos minutos y vuelve a probar.",
        "signup.title": "Crea tu cuenta",
        "signup.name": "Tu nombre",
        "signup.submit": "Registrarme",
        "signup.have_account": "¿Ya tienes cuenta?",
        "chooser.title": "Elige un Área de Cliente",
        "chooser.legend": "¿Qué Área de Cliente quieres gestionar?",
        "chooser.submit": "Continuar",
        "role.owner": "Propietario",
        "role.delegate": "Usuario asociado",
        "consent.title": "¿Permitir el acceso?",
        "consent.asks": "{client} quiere actuar por ti en el Área de Cliente que elijas, con:",
        "consent.allow": "Permitir",
        "consent.deny": "Denegar",
        "error.title": "Algo ha fallado",
        "error.csrf": "El formulario ha caducado. Vuelve atrás e inténtalo de nuevo.",
        "error.area": "Elige una de tus Áreas de Cliente.",
        "home.title": "Sesión iniciada",
        "home.as": "Has iniciado sesión como {email}.",
        "signout": "Cerrar sesión",
    },
}


def t(locale: str, key: str, **values: str) -> str:
    text = TEXT.get(locale, TEXT["en"]).get(key) or TEXT["en"][key]
    return text.format(**values) if values else text
