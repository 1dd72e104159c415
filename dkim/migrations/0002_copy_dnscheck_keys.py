"""The keys dnscheck kept (one per domain, table dnscheck_dkim_keys) move here as active keys.

dnscheck's 0002 drops the old table once this has run. Backwards, each
domain's active key goes back to the old table (which had room for one), so
migrating back loses nothing the old schema could hold.
"""

from django.db import migrations


def forward(apps, schema_editor):
    Old = apps.get_model("dnscheck", "DkimKey")
    New = apps.get_model("dkim", "DkimKey")
    New.objects.using(schema_editor.connection.alias).bulk_create(
        New(domain_id=old.domain_id, selector=old.selector, algorithm=old.algorithm,
            public_key=old.public_key, state="active", created=old.modified,
            activated=old.modified)
        for old in Old.objects.using(schema_editor.connection.alias).order_by("pk").iterator())
    # bulk_create stamps `modified` (auto_now) with now; keep the old date, or
    # every domain's DKIM result would read as stale until its next check.
    for old in Old.objects.using(schema_editor.connection.alias).all().iterator():
        New.objects.using(schema_editor.connection.alias).filter(domain_id=old.domain_id, selector=old.selector).update(
            modified=old.modified)


def backward(apps, schema_editor):
    Old = apps.get_model("dnscheck", "DkimKey")
    New = apps.get_model("dkim", "DkimKey")
    seen = set()
    for new in New.objects.using(schema_editor.connection.alias).filter(state="active").order_by("domain_id", "-activated", "-pk"):
        if new.domain_id in seen:
            continue
        seen.add(new.domain_id)
        row = Old.objects.using(schema_editor.connection.alias).create(domain_id=new.domain_id, selector=new.selector,
                                 algorithm=new.algorithm, public_key=new.public_key)
        # As forward: the key's own date, or every DKIM result would read as stale.
        Old.objects.using(schema_editor.connection.alias).filter(pk=row.pk).update(modified=new.modified)


class Migration(migrations.Migration):

    dependencies = [
        ("dkim", "0001_initial"),
        ("dnscheck", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(forward, backward),
    ]
