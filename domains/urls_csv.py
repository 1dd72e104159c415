from django.urls import path

from domains import views_csv

app_name = "csv"
urlpatterns = [
    path("domains/<str:name>/export/mailboxes.csv", views_csv.export_mailboxes,
         name="export-mailboxes"),
    path("domains/<str:name>/export/aliases.csv", views_csv.export_aliases,
         name="export-aliases"),
    path("domains/<str:name>/import/", views_csv.import_upload, name="import"),
    path("domains/<str:name>/import/<int:job>/", views_csv.import_job, name="import-job"),
    path("domains/<str:name>/import/<int:job>/confirm/", views_csv.import_confirm,
         name="import-confirm"),
]
