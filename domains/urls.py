from django.urls import path

from domains.views import aliases, csv, domains, kept_maildirs, mailboxes, pick

app_name = "domains"
urlpatterns = [
    path("domains/", domains.domain_list, name="domain-list"),
    path("domains/new/", domains.domain_create, name="domain-create"),
    path("domains/<str:name>/", domains.domain_detail, name="domain-detail"),
    path("domains/<str:name>/edit/", domains.domain_edit, name="domain-edit"),
    path("domains/<str:name>/delete/", domains.domain_delete, name="domain-delete"),
    path("domains/<str:name>/mailboxes/new/", mailboxes.mailbox_create, name="mailbox-create"),
    path("domains/<str:name>/mailboxes/check/", mailboxes.mailbox_check, name="mailbox-check"),
    path("mailboxes/", mailboxes.mailbox_list, name="mailbox-list"),
    # Before mailboxes/<email>/: an address always has an @, "new" never.
    path("mailboxes/new/", pick.mailbox_new, name="mailbox-new"),
    path("mailboxes/<str:email>/", mailboxes.mailbox_edit, name="mailbox-edit"),
    path("mailboxes/<str:email>/delete/", mailboxes.mailbox_delete, name="mailbox-delete"),
    path("domains/<str:name>/aliases/", aliases.alias_list, name="alias-list"),
    path("domains/<str:name>/aliases/new/", aliases.alias_create, name="alias-create"),
    path("aliases/", aliases.all_aliases, name="aliases"),
    path("aliases/new/", pick.alias_new, name="alias-new"),
    # An alias by its address; `@a.example` is a.example's catch-all.
    path("aliases/<str:source>/", aliases.alias_edit, name="alias-edit"),
    path("aliases/<str:source>/delete/", aliases.alias_delete, name="alias-delete"),
    path("domains/<str:name>/alias-domains/new/", aliases.alias_domain_create,
         name="aliasdomain-create"),
    path("alias-domains/<str:alias>/", aliases.alias_domain_edit, name="aliasdomain-edit"),
    path("alias-domains/<str:alias>/delete/", aliases.alias_domain_delete,
         name="aliasdomain-delete"),
    path("domains/<str:name>/export/mailboxes.csv", csv.export_mailboxes,
         name="export-mailboxes"),
    path("domains/<str:name>/export/aliases.csv", csv.export_aliases, name="export-aliases"),
    # Superadmins only: the Maildirs of deleted mailboxes, until the grace period ends.
    path("kept-maildirs/", kept_maildirs.kept_maildir_list, name="kept-maildir-list"),
    path("kept-maildirs/<int:pk>/restore/", kept_maildirs.kept_maildir_restore,
         name="kept-maildir-restore"),
    path("kept-maildirs/<int:pk>/purge/", kept_maildirs.kept_maildir_purge,
         name="kept-maildir-purge"),
    path("domains/<str:name>/import/", csv.import_upload, name="import"),
    path("domains/<str:name>/import/<int:job>/", csv.import_job, name="import-job"),
    path("domains/<str:name>/import/<int:job>/confirm/", csv.import_confirm,
         name="import-confirm"),
    path("domains/<str:name>/import/<int:job>/passwords.csv", csv.import_passwords,
         name="import-passwords"),
]
