from django.urls import path

from domains import views_aliases as views

app_name = "aliases"
urlpatterns = [
    path("domains/<str:name>/aliases/", views.alias_list, name="alias-list"),
    path("domains/<str:name>/aliases/new/", views.alias_create, name="alias-create"),
    # An alias by its address; `@a.example` is a.example's catch-all.
    path("aliases/<str:source>/", views.alias_edit, name="alias-edit"),
    path("aliases/<str:source>/delete/", views.alias_delete, name="alias-delete"),
    path("domains/<str:name>/alias-domains/new/", views.alias_domain_create,
         name="aliasdomain-create"),
    path("alias-domains/<str:alias>/", views.alias_domain_edit, name="aliasdomain-edit"),
    path("alias-domains/<str:alias>/delete/", views.alias_domain_delete,
         name="aliasdomain-delete"),
]
