from tests.dnscheck.test_report import *  # noqa

def test_show(history, mailoutbox):
    report.send_reports(at(24))
    root = by_recipient(mailoutbox)["root@admin.test"]
    print("SUBJECT:", root.subject)
    print(root.body)
    open("/tmp/report.html", "w").write(html_of(root))
