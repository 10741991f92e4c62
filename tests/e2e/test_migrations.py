"""Schema migrations: a database made by the old schema.sql upgrades in place, its data intact, once."""
from tests.e2e.helpers import MIGRATION_IDS, assert_upgraded_with_its_data
from webapp.storage.migrate import migrate, pending


def test_a_database_made_by_the_old_schema_upgrades_in_place_with_its_data(old_database):
    settings, con = old_database
    assert pending(settings) == MIGRATION_IDS
    assert migrate(settings) == MIGRATION_IDS
    assert_upgraded_with_its_data(con)
    assert pending(settings) == [] and migrate(settings) == []  # applied once
