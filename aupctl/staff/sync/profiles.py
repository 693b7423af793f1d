"""The MIS exports' own headers for aupctl's fields, per profile. Constructed here from each MIS's
documented report fields (tests/data/mis/README.md says where); a school's own headers go in [mis.columns]."""

from __future__ import annotations

# aupctl's fields: person_id (immutable MIS id), legal and preferred names, staff code, work email, role or
# post, start and end date, department, and the export's own date where the report carries one (none of the
# header sets below documents one: a school whose report has one maps it in [mis.columns] export_date).
FIELDS = [
    "person_id",
    "legal_first",
    "legal_last",
    "preferred_first",
    "preferred_last",
    "staff_code",
    "email",
    "role",
    "start_date",
    "end_date",
    "department",
    "export_date",  # when the MIS made the export (a date, or date and time): its age is judged by it
]
REQUIRED = ["person_id", "legal_first", "legal_last", "role"]

PROFILES: dict[str, dict[str, str]] = {
    "sims": {
        "person_id": "Person ID",
        "legal_first": "Legal Forename",
        "legal_last": "Legal Surname",
        "preferred_first": "Preferred Forename",
        "preferred_last": "Preferred Surname",
        "staff_code": "Staff Code",
        "email": "Work Email",
        "role": "Role",
        "start_date": "Employment Start Date",
        "end_date": "Employment End Date",
        "department": "Department",
    },
    "arbor": {
        "person_id": "Staff ID",
        "legal_first": "Legal First Name",
        "legal_last": "Legal Last Name",
        "preferred_first": "Preferred First Name",
        "preferred_last": "Preferred Last Name",
        "staff_code": "Staff Code",
        "email": "Work Email Address",
        "role": "Job Title",
        "start_date": "Contract Start Date",
        "end_date": "Contract End Date",
        "department": "Department",
    },
    "bromcom": {
        "person_id": "Payroll Number",
        "legal_first": "Legal Forename",
        "legal_last": "Legal Surname",
        "preferred_first": "Preferred Forename",
        "preferred_last": "Preferred Surname",
        "staff_code": "Staff Code",
        "email": "Work Email",
        "role": "Role",
        "start_date": "Start Date",
        "end_date": "End Date",
        "department": "Department",
    },
    "wonde": {
        "person_id": "mis_id",
        "legal_first": "legal_forename",
        "legal_last": "legal_surname",
        "preferred_first": "forename",
        "preferred_last": "surname",
        "staff_code": "initials",
        "email": "contact_details.emails.work",
        "role": "employment_details.role",
        "start_date": "meta.start_date",
        "end_date": "meta.end_date",
        "department": "departments.name",
    },
}
