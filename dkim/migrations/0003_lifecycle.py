"""The lifecycle: pending -> published -> active -> retiring -> revoked -> gone.

Existing keys were all set by hand (made elsewhere): they become external.
active stays active, published stays published, retired becomes revoked (its
date moves to `revoked`).
"""

from django.db import migrations, models

from dkim import records


def forward(apps, schema_editor):
    Key = apps.get_model("dkim", "DkimKey")
    Key.objects.using(schema_editor.connection.alias).update(external=True)
    for key in Key.objects.using(schema_editor.connection.alias).all().iterator():
        try:
            bits = records.key_bits(key.public_key, key.algorithm)
        except records.BadKey:
            continue  # shown as unreadable on the DKIM page, as before
        Key.objects.using(schema_editor.connection.alias).filter(pk=key.pk).update(bits=bits)
    Key.objects.using(schema_editor.connection.alias).filter(state="retired").update(state="revoked")
    Key.objects.using(schema_editor.connection.alias).filter(state="published", published__isnull=True).update(
        published=models.F("created"))


def backward(apps, schema_editor):
    Key = apps.get_model("dkim", "DkimKey")
    # The old schema had three states; the nearest of each.
    Key.objects.using(schema_editor.connection.alias).filter(state__in=["revoked", "gone", "retiring"]).update(state="retired")
    Key.objects.using(schema_editor.connection.alias).filter(state="pending").update(state="published")


class Migration(migrations.Migration):

    dependencies = [
        ("dkim", "0002_copy_dnscheck_keys"),
    ]

    operations = [
        migrations.RenameField("dkimkey", "retired", "revoked"),
        migrations.AddField("dkimkey", "bits", models.PositiveIntegerField(default=0)),
        migrations.AddField("dkimkey", "external", models.BooleanField(default=False)),
        migrations.AddField("dkimkey", "published_seen_at",
                            models.DateTimeField(blank=True, null=True)),
        migrations.AddField("dkimkey", "published", models.DateTimeField(blank=True, null=True)),
        migrations.AddField("dkimkey", "retiring_since",
                            models.DateTimeField(blank=True, null=True)),
        migrations.AddField("dkimkey", "removed", models.DateTimeField(blank=True, null=True)),
        migrations.AddField("dkimkey", "ttl_seen",
                            models.PositiveIntegerField(blank=True, null=True)),
        migrations.AddField("dkimkey", "checked", models.DateTimeField(blank=True, null=True)),
        migrations.AddField("dkimkey", "problem",
                            models.CharField(blank=True, default="", max_length=500)),
        migrations.AlterField("dkimkey", "public_key", models.TextField(blank=True, default="")),
        migrations.AlterField("dkimkey", "algorithm", models.CharField(
            choices=[("rsa", "Rsa"), ("ed25519", "Ed25519")], default="rsa", max_length=10)),
        migrations.AlterField("dkimkey", "state", models.CharField(
            choices=[("pending", "Pending"), ("published", "Published"), ("active", "Active"),
                     ("retiring", "Retiring"), ("revoked", "Revoked"), ("gone", "Gone")],
            default="pending", max_length=10)),
        migrations.RunPython(forward, backward),
    ]
