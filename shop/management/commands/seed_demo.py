from django.core.management.base import BaseCommand

from shop.demo import seed_demo


class Command(BaseCommand):
    help = "Load the demo catalog and a staff login (safe to run again: nothing is duplicated)."

    def handle(self, *args, **options) -> None:
        result = seed_demo()
        self.stdout.write(
            f"Demo catalog: {result.categories_created} categories and "
            f"{result.products_created} products added."
        )
        login = result.login
        if login.password:
            self.stdout.write(
                self.style.SUCCESS(f"Staff login: {login.username} / {login.password}")
            )
        else:
            self.stdout.write(
                f"Staff login: {login.username} (password changed by you since it was generated)"
            )
