from django.apps import AppConfig


class DispatchConfig(AppConfig):
    name = "dispatch"
    verbose_name = "Dispatch"

    def ready(self) -> None:
        # At ready time: the hooks import the models.
        from dispatch import hooks

        hooks.connect()
