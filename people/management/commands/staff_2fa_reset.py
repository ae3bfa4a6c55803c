from django.core.management.base import BaseCommand, CommandError

from people.models import User
from people.phones import InvalidPhoneNumber, normalize_phone
from people.staff_signin import totp_reset


class Command(BaseCommand):
    help = (
        "Remove a staff member's authenticator, on the server itself (audited, no actor): "
        "for a superuser nobody else can reset in the admin. They set up a new one at "
        "their next sign-in."
    )

    def add_arguments(self, parser):
        parser.add_argument("phone", help="the staff member's phone number, any spelling")

    def handle(self, *args, phone: str, **options):
        try:
            number = normalize_phone(phone)
        except InvalidPhoneNumber as exc:
            raise CommandError(exc.messages[0]) from exc
        user = User.objects.filter(phone_number=number, is_staff=True).first()
        if user is None:
            raise CommandError(f"No staff account has the phone number {number}.")
        removed = totp_reset(staff_member=user, actor=None)
        self.stdout.write(
            f"{user}: {removed} authenticator(s) removed. They set up a new one at their "
            "next sign-in."
        )
