from telecare.cli import app

app(prog_name="telecare")
