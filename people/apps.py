from django.apps import AppConfig

from project.common.adapters import language_info_add


class PeopleConfig(AppConfig):
    name = "people"
    verbose_name = "People"

    def ready(self) -> None:
        # At ready time: the signals' receivers need the models.
        from people import caregivers, sessions, signals

        signals.connect()
        signals.switched_off.connect(sessions.on_switched_off, dispatch_uid="people.sessions_end")
        signals.made_staff.connect(sessions.on_made_staff, dispatch_uid="people.sessions_staff")
        signals.caring_changed.connect(
            caregivers.on_caring_changed, dispatch_uid="people.links_caring_changed"
        )
        # Notification texts come in isiZulu too (settings.LANGUAGES).
        language_info_add("zu", name="Zulu", name_local="isiZulu")
