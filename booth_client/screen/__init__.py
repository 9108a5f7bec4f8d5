"""The participant's screen at the booth kiosk: pygame in a window, or PNG files headless.

`add_screen(client, ScreenSettings(...))` attaches it to a BoothClient. The pure part
(what to show: `model.Kiosk`, `model.ScreenModel`) is separate from pygame (`render`) and
from the client (`observe`); `app.KioskScreen` runs them.
"""

from booth_client.screen.app import KioskScreen, ScreenUnavailable, add_screen
from booth_client.screen.settings import ScreenSettings

__all__ = ["KioskScreen", "ScreenSettings", "ScreenUnavailable", "add_screen"]
