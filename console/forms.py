"""The console's forms: they check input; the services do the work."""

from __future__ import annotations

from django import forms
from unfold.forms import AuthenticationForm
from unfold.widgets import BASE_INPUT_CLASSES

from people import staff_signin
from people.access import LinkPermissions
from people.caregivers import PERMISSIONS
from people.models import RelationshipType, User
from people.phones import InvalidPhoneNumber, normalize_phone

CANCEL_REASONS = (
    "Passenger asked to cancel",
    "Caregiver asked to cancel",
    "Booked by mistake",
    "No accessible vehicle nearby",
    "Passenger not reachable",
    "Driver vehicle problem",
)


class ConsoleLoginForm(AuthenticationForm):
    """
    Staff sign in with their phone number in any usual spelling, on the
    console and on the admin (UNFOLD's LOGIN form). Unfold's form (Django's
    admin form underneath) refuses non-staff accounts and styles the inputs
    like the admin's. Too many wrong passwords for one phone number, or from
    one address, refuse sign-in for a while (people.staff_signin).
    """

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        username = self.fields["username"]
        username.label = "Phone number"
        username.widget.attrs.update(
            {"autocomplete": "username", "inputmode": "tel", "placeholder": "+27 80 000 0001"}
        )

    def clean_username(self) -> str:
        raw = self.cleaned_data["username"]
        try:
            return normalize_phone(raw)
        except InvalidPhoneNumber:
            # Let authentication fail with the usual, non-revealing message.
            return raw

    def clean(self):
        phone = self.cleaned_data.get("username") or ""
        address = self.request.META.get("REMOTE_ADDR") if self.request else None
        lock = staff_signin.staff_login_lock(phone=phone, address=address)
        if lock is not None:
            raise forms.ValidationError(lock.message, code="locked")
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            # A wrong password, not a right one for an account that may not
            # sign in here (switched off, not staff).
            if self.user_cache is None and phone:
                lock = staff_signin.staff_login_failed(phone=phone, address=address)
                if lock is not None:
                    raise forms.ValidationError(lock.message, code="locked") from None
            raise
        staff_signin.staff_login_succeeded(phone=phone)
        return cleaned


class SecondFactorForm(forms.Form):
    code = forms.CharField(
        label="Code from your authenticator app",
        max_length=16,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "autofocus": "",
                "placeholder": "123456",
                "class": " ".join(BASE_INPUT_CLASSES),
            }
        ),
    )


# The largest key the database holds (BigAutoField): a larger id is no driver.
MAX_KEY = 2**63 - 1


class AssignForm(forms.Form):
    driver_id = forms.IntegerField(min_value=1, max_value=MAX_KEY)
    # The ride version the dispatcher looked at: a ride that changed since
    # is shown again instead of being reassigned blindly.
    version = forms.IntegerField(min_value=0)
    # Set by the "Assign anyway" button, once the dispatcher has read why
    # the driver is not a usual choice (dispatch.matching's soft rules).
    confirm = forms.BooleanField(required=False)


class CancelForm(forms.Form):
    reason = forms.CharField(
        max_length=64,
        widget=forms.TextInput(attrs={"list": "cancel-reasons", "autocomplete": "off"}),
    )
    version = forms.IntegerField(min_value=0)
    # An outbound trip's cancel takes its ride home too, unless this.
    keep_return = forms.BooleanField(required=False)


def _phone_field(label: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=32,
        widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "off"}),
    )


def _normalised(phone: str) -> str:
    """The phone number normalised, or the form's error saying why it is not one."""
    try:
        return normalize_phone(phone)
    except InvalidPhoneNumber as exc:
        raise forms.ValidationError(exc.messages[0]) from exc


class LinkCreateForm(forms.Form):
    passenger_phone = _phone_field("Passenger phone")
    caregiver_phone = _phone_field("Caregiver phone")
    relationship_type = forms.ChoiceField(
        label="Relationship", choices=RelationshipType.choices, initial=RelationshipType.FAMILY
    )
    can_book_rides = forms.BooleanField(label="May book rides", required=False, initial=True)
    can_view_location = forms.BooleanField(
        label="May see the live location", required=False, initial=True
    )
    can_receive_notifications = forms.BooleanField(
        label="Gets ride notifications", required=False, initial=True
    )
    notes = forms.CharField(
        required=False, max_length=500, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )

    def clean_passenger_phone(self) -> User:
        phone = _normalised(self.cleaned_data["passenger_phone"])
        passenger = User.objects.filter(phone_number=phone).first()
        if passenger is None:
            raise forms.ValidationError("No passenger has this phone number.")
        return passenger

    def clean_caregiver_phone(self) -> str:
        return _normalised(self.cleaned_data["caregiver_phone"])


def _search_field(label: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        max_length=64,
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off"}),
    )


class LinkSearchForm(forms.Form):
    passenger = _search_field("Passenger (name or phone)")
    caregiver = _search_field("Caregiver (name or phone)")
    ended = forms.BooleanField(label="Show declined and revoked links", required=False)


class LinkPermissionsForm(forms.Form):
    can_book_rides = forms.BooleanField(label="May book rides", required=False)
    can_view_location = forms.BooleanField(label="May see the live location", required=False)
    can_receive_notifications = forms.BooleanField(label="Gets ride notifications", required=False)
    # The switches as the page showed them ("true"/"false"): a link changed
    # since (by the passenger in the app, or a colleague) is shown again
    # instead of being written over.
    shown_can_book_rides = forms.NullBooleanField(required=False, widget=forms.HiddenInput)
    shown_can_view_location = forms.NullBooleanField(required=False, widget=forms.HiddenInput)
    shown_can_receive_notifications = forms.NullBooleanField(
        required=False, widget=forms.HiddenInput
    )

    def changes(self) -> dict[str, bool]:
        data = self.cleaned_data
        return {name: data[name] for name in PERMISSIONS}

    def shown(self) -> LinkPermissions | None:
        """What the page showed; None from a form that did not say."""
        seen = [self.cleaned_data[f"shown_{name}"] for name in PERMISSIONS]
        return None if None in seen else LinkPermissions(*seen)


class AcceptForCaregiverForm(forms.Form):
    consent = forms.CharField(
        label="How the caregiver agreed",
        max_length=500,
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "placeholder": "Phoned Emily at 14:05; she agreed"}
        ),
        error_messages={"required": "Say how the caregiver agreed (consent taken by phone)."},
    )
