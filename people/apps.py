from django.apps import AppConfig

from project.common.adapters import language_info_add


class PeopleConfig(AppConfig):
    name = "people"
    verbose_name = "People"

    def ready(self) -> None:
        # At ready time: the signals' receivers need the models.
        from people import signals

        signals.connect()
        # Notification texts come in isiZulu too (settings.LANGUAGES).
        language_info_add("zu", name="Zulu", name_local="isiZulu")
