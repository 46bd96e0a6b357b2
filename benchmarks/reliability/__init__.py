"""``make reliability``: real Airflow processes, real crashes, counted by the emulator."""
