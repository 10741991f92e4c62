"""The load bench (`make bench`): scenarios, references, report and charts."""
