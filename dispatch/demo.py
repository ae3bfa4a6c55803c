"""
Demo data: the three original drivers and a small cast to try the flows,
and a scheduled day tomorrow: shifts for the demo drivers, a few riders'
trips booked ahead, and Sarah's recurring dialysis rides booked by Emily.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from dispatch import drivers, series
from dispatch.models import DriverShift, DriverState, DriverStatus, Ride, RideSeries
from dispatch.scheduling import Needs, Place, ride_book_ahead
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


def _family(passenger: User, caregiver: User, *, notes: str, **permissions) -> None:
    """An active family link of the caregiver to the passenger, unless one is live."""
    if CaregiverLink.objects.live().filter(passenger=passenger, caregiver=caregiver).exists():
        return
    CaregiverLink.objects.create(
        passenger=passenger,
        caregiver=caregiver,
        relationship_type=RelationshipType.FAMILY,
        status=LinkStatus.ACTIVE,
        responded_at=timezone.now(),
        notes=notes,
        **permissions,
    )


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
        _family(sarah, emily, notes="Daughter; call her if Sarah does not answer.")
        dispatcher, created = User.objects.get_or_create(
            phone_number=DEMO_DISPATCHER_PHONE,
            defaults={"first_name": "Demo", "last_name": "Dispatcher", "is_staff": True},
        )
        if created or not dispatcher.check_password(DEMO_DISPATCHER_PASSWORD):
            dispatcher.set_password(DEMO_DISPATCHER_PASSWORD)
            dispatcher.is_staff = True
            dispatcher.save()
        dispatcher.groups.add(Group.objects.get(name=DISPATCHERS))
    seed_scheduled_day(sarah=sarah, emily=emily)
    return {"sarah": sarah, "michael": michael, "emily": emily, "dispatcher": dispatcher}


SARAH_HOME = Place(-26.1952, 28.0340, "14 Jorissen St, Braamfontein")
DIALYSIS = Place(-26.1747, 28.0457, "Dialysis centre, Parktown")
# (first, last, phone, home, destination, hour, minute, arrive by, wheelchair)
DEMO_RIDERS = (
    ("Thandi", "Nkosi", "27821230001", (-26.231, 28.058), (-26.183, 28.013), 8, 0, 0, 0),
    ("Grace", "Molefe", "27821230002", (-26.139, 28.032), (-26.175, 28.046), 9, 0, 1, 1),
    ("Pieter", "van Wyk", "27821230003", (-25.757, 28.191), (-25.730, 28.210), 8, 30, 0, 0),
    ("Ahmed", "Patel", "27821230004", (-25.775, 28.240), (-25.748, 28.229), 10, 0, 1, 1),
    ("Lindiwe", "Dlamini", "27821230005", (-26.160, 28.080), (-26.204, 28.047), 11, 15, 0, 0),
)


def _local(day, hour: int, minute: int = 0) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour, minute)))


def seed_scheduled_day(*, sarah: User, emily: User) -> None:
    """
    Tomorrow: a shift for each demo driver (the wheelchair-accessible van
    with two wheelchair spaces), five riders' trips booked ahead, and
    Sarah's dialysis series (three days a week from tomorrow, 07:30, back
    at 12:00) booked by Emily. Idempotent.
    """
    tomorrow = timezone.localdate() + timedelta(days=1)
    for d in [*SEED_DRIVERS, DemoDriver("Michael", "Brown", "27821234568", "", "", -26.15, 28.1)]:
        driver = User.objects.get(phone_number=normalize_phone(d.phone))
        start = _local(tomorrow, 6 if d.first_name != "Jane" else 9)
        accessible = d.vehicle_type == VehicleType.WHEELCHAIR_ACCESSIBLE
        DriverShift.objects.get_or_create(
            driver=driver,
            start_at=start,
            defaults=dict(
                end_at=start + timedelta(hours=9),
                start_latitude=d.latitude,
                start_longitude=d.longitude,
                end_latitude=d.latitude,
                end_longitude=d.longitude,
                start_address="Depot",
                end_address="Depot",
                seats=3 if accessible else 4,
                wheelchair_spaces=2 if accessible else 0,
            ),
        )
    for first, last, phone, home, place, hour, minute, arrive_by, chair in DEMO_RIDERS:
        rider = _person(phone, first, last, UserType.PASSENGER)
        PassengerProfile.objects.get_or_create(
            user=rider, defaults={"needs_wheelchair": bool(chair)}
        )
        ride_id = f"demo-{tomorrow:%Y%m%d}-{phone[-2:]}"
        if Ride.objects.filter(ride_id=ride_id).exists():
            continue
        when = _local(tomorrow, hour, minute)
        ride_book_ahead(
            passenger=rider,
            booked_by=rider,
            ride_id=ride_id,
            pickup=Place(*home, f"{first}'s home"),
            dropoff=Place(*place, "Clinic" if arrive_by else "Day centre"),
            pickup_at=None if arrive_by else when,
            appointment_at=when if arrive_by else None,
            return_at=when + timedelta(hours=3),
            needs=Needs(wheelchair=bool(chair)),
        )
    dialysis = RideSeries.objects.filter(
        passenger=sarah, booked_by=emily, dropoff_address=DIALYSIS.address, status="active"
    )
    if not dialysis.exists():
        series.series_create(
            passenger=sarah,
            booked_by=emily,
            weekdays=[(tomorrow + timedelta(days=n)).weekday() for n in (0, 2, 4)],
            start_date=tomorrow,
            pickup_time=time(7, 30),
            return_time=time(12, 0),
            pickup=SARAH_HOME,
            dropoff=DIALYSIS,
            notes="Dialysis: please be on time.",
        )


# --- the simulated day's cast (manage.py simulate) ------------------------------

# Around Johannesburg, where the demo drivers stand.
SIM_CENTRE = (-26.1950, 28.0400)
SIM_DRIVER_NAMES = (
    ("Sipho", "Mokoena"), ("Anele", "Zulu"), ("Johan", "Botha"), ("Naledi", "Khumalo"),
    ("Rashid", "Adams"), ("Lerato", "Mahlangu"), ("Kobus", "Pretorius"), ("Zanele", "Ngcobo"),
    ("Tebogo", "Sithole"), ("Fatima", "Ebrahim"), ("Bongani", "Mthembu"), ("Karin", "du Plessis"),
    ("Mpho", "Radebe"), ("Nadia", "Naidoo"), ("Themba", "Cele"), ("Refilwe", "Moloi"),
    ("Willem", "Venter"), ("Ayanda", "Shabalala"), ("Priya", "Govender"), ("Lwazi", "Ndlovu"),
)  # fmt: skip
SIM_PASSENGER_NAMES = (
    ("Gogo", "Mabena"), ("Elsie", "Fourie"), ("Joseph", "Mkhize"), ("Ruth", "Abrahams"),
    ("Samuel", "Tshabalala"), ("Maria", "Ferreira"), ("Dudu", "Zwane"), ("Frank", "Olivier"),
    ("Nomvula", "Dube"), ("Ismail", "Jacobs"),
)  # fmt: skip
SIM_CAREGIVER_NAMES = (("Palesa", "Mabena"), ("Annelie", "Fourie"), ("Kagiso", "Mkhize"))
# Every fourth simulated passenger travels in a wheelchair; every fifth
# simulated vehicle carries one.
SIM_WHEELCHAIR_EVERY = 4
SIM_ACCESSIBLE_EVERY = 5


@dataclass(frozen=True)
class SimCast:
    drivers: list[User]
    passengers: list[User]
    # caregiver -> the passenger they may book for
    caregivers: dict[User, User]
    # The demo drivers who stand still (seed_drivers): off duty while the
    # simulation runs, so no ride waits on a driver who never moves.
    standing: list[User] = ()


def sim_phone(kind: int, number: int) -> str:
    """The simulated cast's numbers: 2782990xxxx drivers, ...98... passengers, ...97... carers."""
    return f"27829{kind}{number:05d}"


def seed_simulation(drivers_wanted: int = 20) -> SimCast:
    """
    The simulator's drivers (verified, spread around the centre, offline
    until their app connects), passengers (some in wheelchairs) and
    caregivers (each linked to one passenger, allowed to book). Idempotent.
    """
    sim_drivers = []
    for number in range(1, drivers_wanted + 1):
        first, last = SIM_DRIVER_NAMES[(number - 1) % len(SIM_DRIVER_NAMES)]
        accessible = number % SIM_ACCESSIBLE_EVERY == 0
        with transaction.atomic():
            user = _driver(
                sim_phone(90, number),
                first,
                last if number <= len(SIM_DRIVER_NAMES) else f"{last} {number}",
                VehicleType.WHEELCHAIR_ACCESSIBLE if accessible else VehicleType.SEDAN,
                f"SIM {number:03d} GP",
                demo=False,
            )
            drivers.driver_state_for(user)
        sim_drivers.append(user)
    passengers = []
    for number, (first, last) in enumerate(SIM_PASSENGER_NAMES, 1):
        user = _person(sim_phone(98, number), first, last, UserType.PASSENGER)
        PassengerProfile.objects.update_or_create(
            user=user, defaults={"needs_wheelchair": number % SIM_WHEELCHAIR_EVERY == 0}
        )
        passengers.append(user)
    caregivers = {}
    for number, (first, last) in enumerate(SIM_CAREGIVER_NAMES, 1):
        carer = _person(sim_phone(97, number), first, last, UserType.CAREGIVER)
        cared_for = passengers[number - 1]
        _family(cared_for, carer, notes="Simulated family member.", can_book_rides=True)
        caregivers[carer] = cared_for
    standing = list(
        User.objects.filter(
            phone_number__in=[normalize_phone(d.phone) for d in SEED_DRIVERS],
            driver_profile__is_demo=True,
        )
    )
    return SimCast(
        drivers=sim_drivers, passengers=passengers, caregivers=caregivers, standing=standing
    )


def demo_data_present() -> bool:
    """Whether this database holds the demo data (the demo dispatcher and drivers)."""
    seeded = [normalize_phone(d.phone) for d in SEED_DRIVERS]
    return User.objects.filter(
        phone_number=DEMO_DISPATCHER_PHONE
    ).exists() and DriverProfile.objects.filter(
        user__phone_number__in=seeded, is_demo=True
    ).count() == len(seeded)
