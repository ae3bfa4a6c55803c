"""Demo data: the three original drivers and a small cast to try the flows."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from dispatch import drivers
from dispatch.models import DriverState, DriverStatus
from people.access import DISPATCHERS
from people.models import (
    CaregiverLink,
    DriverProfile,
    LinkStatus,
    PassengerProfile,
    RelationshipType,
    User,
    UserType,
    VehicleType,
)
from people.phones import normalize_phone

DEMO_DISPATCHER_PHONE = "27800000001"
DEMO_DISPATCHER_PASSWORD = "dispatch-demo"


@dataclass(frozen=True)
class DemoDriver:
    first_name: str
    last_name: str
    phone: str
    vehicle_type: str
    registration: str
    latitude: float
    longitude: float


SEED_DRIVERS = (
    DemoDriver("John", "Doe", "+27123456789", VehicleType.SEDAN, "CA 123 GP", -26.2041, 28.0473),
    DemoDriver("Jane", "Smith", "+27123456790", VehicleType.SUV, "CA 456 GP", -26.1041, 28.1473),
    DemoDriver(
        "Mike",
        "Johnson",
        "+27123456791",
        VehicleType.WHEELCHAIR_ACCESSIBLE,
        "CA 789 GP",
        -25.7479,
        28.2293,
    ),
)


def _person(phone: str, first: str, last: str, user_type: str) -> User:
    user, _ = User.objects.get_or_create(
        phone_number=phone,
        defaults={"first_name": first, "last_name": last, "user_type": user_type},
    )
    if (user.first_name, user.last_name, user.user_type) != (first, last, user_type):
        user.first_name, user.last_name, user.user_type = first, last, user_type
        user.save(update_fields=["first_name", "last_name", "user_type"])
    return user


def _driver(
    phone: str, first: str, last: str, vehicle_type: str, registration: str, *, demo: bool
) -> User:
    user = _person(phone, first, last, UserType.DRIVER)
    DriverProfile.objects.update_or_create(
        user=user,
        defaults={
            "vehicle_type": vehicle_type,
            "vehicle_registration": registration,
            "licence_number": f"DEMO-{registration.replace(' ', '')}",
            "is_verified": True,
            "is_demo": demo,
        },
    )
    return user


def seed_drivers() -> list[User]:
    """
    The three original drivers, available and verified, where they stand.
    Running it again changes nothing, and leaves a driver on a trip alone.
    """
    seeded = []
    for d in SEED_DRIVERS:
        with transaction.atomic():
            user = _driver(
                normalize_phone(d.phone),
                d.first_name,
                d.last_name,
                d.vehicle_type,
                d.registration,
                demo=True,
            )
            state = drivers.driver_state_for(user)
        if state.status != DriverStatus.ON_TRIP:
            drivers.driver_place(driver=user, latitude=d.latitude, longitude=d.longitude)
            drivers.driver_set_status(driver=user, status=DriverStatus.AVAILABLE)
        seeded.append(user)
    return seeded


def seed_demo() -> dict[str, User]:
    """Everything `make run` loads: idempotent."""
    seed_drivers()
    with transaction.atomic():
        sarah = _person("27821234567", "Sarah", "Johnson", UserType.PASSENGER)
        PassengerProfile.objects.get_or_create(user=sarah)
        michael = _driver(
            "27821234568", "Michael", "Brown", VehicleType.SEDAN, "CA 999 GP", demo=False
        )
        # Offline until his app goes online.
        DriverState.objects.get_or_create(driver=michael)
        emily = _person("27821234569", "Emily", "Davis", UserType.CAREGIVER)
        if not CaregiverLink.objects.live().filter(passenger=sarah, caregiver=emily).exists():
            CaregiverLink.objects.create(
                passenger=sarah,
                caregiver=emily,
                relationship_type=RelationshipType.FAMILY,
                status=LinkStatus.ACTIVE,
                responded_at=timezone.now(),
                notes="Daughter; call her if Sarah does not answer.",
            )
        dispatcher, created = User.objects.get_or_create(
            phone_number=DEMO_DISPATCHER_PHONE,
            defaults={"first_name": "Demo", "last_name": "Dispatcher", "is_staff": True},
        )
        if created or not dispatcher.check_password(DEMO_DISPATCHER_PASSWORD):
            dispatcher.set_password(DEMO_DISPATCHER_PASSWORD)
            dispatcher.is_staff = True
            dispatcher.save()
        dispatcher.groups.add(Group.objects.get(name=DISPATCHERS))
    return {"sarah": sarah, "michael": michael, "emily": emily, "dispatcher": dispatcher}
