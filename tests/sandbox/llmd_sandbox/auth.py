"""Bearer tokens and a small RBAC table: admin (everything), readonly (reads in one namespace), none."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from .resources import READ_VERBS, Resource

SERVICE_ACCOUNT_NAMESPACE = "llmd-sandbox"
ROLES = ("admin", "readonly", "none")
# What `readonly` may read besides the resources themselves (never proxy or portforward).
READONLY_SUBRESOURCES = (None, "log", "status")


@dataclass(frozen=True)
class User:
    role: str

    @property
    def name(self) -> str:
        return f"system:serviceaccount:{SERVICE_ACCOUNT_NAMESPACE}:{self.role}"

    @property
    def groups(self) -> list[str]:
        return ["system:serviceaccounts", f"system:serviceaccounts:{SERVICE_ACCOUNT_NAMESPACE}", "system:authenticated"]


@dataclass(frozen=True)
class Request:
    """One authorization question, as the real RequestInfo describes it."""

    verb: str
    group: str
    resource: str  # the plural, e.g. "pods"
    subresource: str | None = None
    namespace: str | None = None
    name: str | None = None

    @classmethod
    def for_resource(cls, verb: str, res: Resource, subresource: str | None = None, namespace: str | None = None,
                     name: str | None = None) -> Request:
        return cls(verb, res.group, res.plural, subresource, namespace if res.namespaced else None, name)

    def forbidden_message(self, user: User) -> str:
        """The real authorizer's wording, e.g. `pods "x" is forbidden: User "..." cannot create resource
        "pods/portforward" in API group "" in the namespace "ns"`."""
        qualified = f"{self.resource}.{self.group}" if self.group else self.resource
        subject = f'{qualified} "{self.name}"' if self.name else qualified
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        scope = f'in the namespace "{self.namespace}"' if self.namespace else "at the cluster scope"
        return (f'{subject} is forbidden: User "{user.name}" cannot {self.verb} resource "{resource}" '
                f'in API group "{self.group}" {scope}')


class Authz:
    """Issues one random token per role and answers who a token is and what it may do."""

    def __init__(self, readonly_namespace: str, tokens: dict[str, str] | None = None):
        self.readonly_namespace = readonly_namespace
        self.tokens = tokens or {role: secrets.token_urlsafe(32) for role in ROLES}
        self._users = {token: User(role) for role, token in self.tokens.items()}

    def authenticate(self, authorization_header: str | None) -> User | None:
        scheme, _sep, token = (authorization_header or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self._users.get(token.strip())

    def allowed(self, user: User, request: Request) -> bool:
        if user.role == "admin":
            return True
        if request.resource == "selfsubjectaccessreviews":  # every authenticated user may ask what it may do
            return request.verb == "create"
        if user.role == "readonly":
            return (request.verb in READ_VERBS and request.namespace == self.readonly_namespace
                    and request.subresource in READONLY_SUBRESOURCES)
        return False
