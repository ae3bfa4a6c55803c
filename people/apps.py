from django.apps import AppConfig


class PeopleConfig(AppConfig):
    name = "people"
    verbose_name = "People"

    def ready(self) -> None:
        # At ready time: the signals' receivers need the models.
        from people import signals

        signals.connect()
