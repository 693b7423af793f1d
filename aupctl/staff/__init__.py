"""Staff: the people in the directory (people: list, show, set-role) and the intake of new staff (staff.intake)."""
