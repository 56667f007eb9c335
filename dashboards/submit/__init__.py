"""The /submit page's parts: session state and callbacks (state), the case report form (form), batch upload
(batch) and the quarantine tab (quarantine). The page itself is ``dashboards/app_pages/submit.py``."""
