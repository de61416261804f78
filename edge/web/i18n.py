"""Bahasa Indonesia (default) and English for the operator's page.

The language is ``?lang=en`` / ``?lang=id`` on any page (remembered in a
cookie), or the switch in the header (``/lang/<code>``). Texts are a plain
catalog: ``t("key", name=...)`` formats with :meth:`str.format`; without
arguments the text is returned as written (the page's script fills such
``{placeholders}`` itself).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from flask import Blueprint, Flask, Response, g, redirect, request

LANGS = ("id", "en")
DEFAULT_LANG = "id"
COOKIE = "lang"

CATALOG: dict[str, dict[str, str]] = {
    "id": {
        "app.name": "Absensi",
        "nav.label": "Menu",
        "nav.today": "Hari ini",
        "nav.roster": "Daftar hadir",
        "nav.excuses": "Izin & sakit",
        "nav.cards": "Kartu",
        "nav.export": "Unduh",
        "nav.account": "Akun",
        "nav.logout": "Keluar ({user})",
        "login.title": "Masuk operator",
        "login.username": "Nama pengguna",
        "login.password": "Kata sandi",
        "login.submit": "Masuk",
        "login.wrong": "Nama pengguna atau kata sandi salah.",
        "login.locked": "Akun ini dikunci karena terlalu banyak kata sandi salah. "
                        "Coba lagi setelah pukul {until}.",
        "login.too_many": "Terlalu banyak percobaan masuk dari perangkat ini. "
                          "Tunggu sebentar lalu coba lagi.",
        "login.expired": "Sesi berakhir karena lama tidak dipakai. Silakan masuk lagi.",
        "login.required": "Silakan masuk terlebih dahulu.",
        "login.no_accounts": "Belum ada akun operator. Teknisi membuatnya di perangkat ini "
                             "dengan perintah:",
        "error.csrf": "Formulir ini sudah kedaluwarsa atau tidak sah. Muat ulang halaman "
                      "lalu coba lagi.",
        "error.not_found": "Halaman tidak ditemukan.",
        "account.title": "Akun saya",
        "account.signed_in_as": "Masuk sebagai {user}.",
        "account.old": "Kata sandi lama",
        "account.new": "Kata sandi baru",
        "account.again": "Ulangi kata sandi baru",
        "account.submit": "Ganti kata sandi",
        "account.old_wrong": "Kata sandi lama salah.",
        "account.mismatch": "Kedua kata sandi baru tidak sama.",
        "account.too_short": "Kata sandi baru minimal {n} karakter.",
        "account.changed": "Kata sandi sudah diganti.",
        "today.title": "Hari ini",
        "today.counts": "Ringkasan hari ini",
        "today.total": "Dari {n} orang terdaftar.",
        "today.live": "Tap terbaru",
        "today.live_on": "langsung",
        "today.live_off": "terputus",
        "today.no_taps": "Belum ada tap hari ini.",
        "today.device": "Perangkat",
        "count.present": "Hadir",
        "count.late": "Terlambat",
        "count.not_arrived": "Belum datang",
        "count.excused": "Izin / sakit",
        "status.present": "Hadir",
        "status.late": "Terlambat",
        "status.sakit": "Sakit",
        "status.izin": "Izin",
        "status.dinas_luar": "Dinas luar",
        "status.cuti": "Cuti",
        "status.not_arrived": "Belum datang",
        "status.absent": "Tanpa keterangan",
        "verdict.accepted": "Diterima",
        "verdict.unknown": "Tak dikenal",
        "verdict.blocked": "Diblokir",
        "verdict.duplicate": "Ulang",
        "plan.server": "Jam masuk {start}, toleransi {grace} menit (jadwal dari server).",
        "plan.config": "Jam masuk {start}, toleransi {grace} menit (pengaturan perangkat).",
        "plan.holiday": "Hari libur: {reason}",
        "plan.no_reason": "bukan hari kerja",
        "plan.weekend": "akhir pekan",
        "plan.no_start": "Tidak ada jam masuk untuk hari ini.",
        "plan.coming": "Jadwal hari berikutnya",
        "page.notice": "Pengumuman:",
        "service.reader": "Pembaca kartu",
        "service.backlog": "Belum terkirim ke server",
        "service.last_sync": "Sinkron terakhir",
        "service.clock": "Jam perangkat",
        "service.waiting": "Menunggu dikirim",
        "service.storage": "Penyimpanan",
        "service.unknown": "Tidak diketahui (layanan tidak berjalan)",
        "service.reader_ok": "Terhubung",
        "service.readers_ok": "{n} pembaca terhubung",
        "service.reader_down": "{name} TERPUTUS {error}",
        "service.no_reader": "Tidak ada pembaca",
        "service.backlog_value": "{n} tap",
        "service.not_enrolled": "Perangkat belum didaftarkan ke server",
        "service.sync_failing": "Gagal; terakhir berhasil {when}",
        "service.never": "belum pernah",
        "service.clock_ok": "Tepat (tersinkron)",
        "service.clock_bad": "Belum tersinkron (server akan mengoreksi waktu tap)",
        "service.waiting_value": "{excuses} izin/sakit, {cards} permintaan kartu",
        "roster.title": "Daftar hadir",
        "roster.group": "Rombel / unit",
        "roster.all_groups": "Semua",
        "roster.no_group": "(tanpa rombel)",
        "roster.show": "Tampilkan",
        "roster.empty": "Belum ada data orang di perangkat ini. Data datang dari server "
                        "saat sinkron.",
        "roster.mark": "Izin/sakit",
        "roster.no_card": "Belum punya kartu",
        "roster.no_card_short": "tanpa kartu",
        "excuse.title": "Izin, sakit, dinas luar, cuti",
        "excuse.new": "Catat keterangan",
        "excuse.person": "Orang",
        "excuse.choose": "— pilih —",
        "excuse.kind": "Keterangan",
        "excuse.from": "Dari tanggal",
        "excuse.to": "Sampai tanggal",
        "excuse.note": "Catatan",
        "excuse.save": "Simpan",
        "excuse.list": "Keterangan yang berlaku",
        "excuse.none": "Belum ada keterangan.",
        "excuse.saved": "{name}: {kind} dicatat. Akan dikirim ke server.",
        "excuse.pick_person": "Pilih orangnya.",
        "excuse.pick_kind": "Pilih keterangannya.",
        "excuse.bad_date": "Tanggal tidak sah.",
        "excuse.order": "Tanggal akhir sebelum tanggal mulai.",
        "excuse.withdraw": "Batalkan",
        "excuse.withdraw_confirm": "Batalkan {kind} {name} ({days})? Keterangan ini tidak "
                                   "berlaku lagi, di perangkat ini dan di server.",
        "excuse.withdrawn": "{name}: {kind} ({days}) dibatalkan. Akan dikirim ke server.",
        "excuse.already_withdrawn": "Keterangan ini sudah dibatalkan.",
        "excuse.withdrawn_at": "Dibatalkan {when}",
        "sync.sent": "terkirim {when}",
        "sync.waiting": "menunggu dikirim",
        "sync.withdrawal_sent": "pembatalan terkirim {when}",
        "sync.withdrawal_waiting": "pembatalan menunggu dikirim",
        "cards.title": "Kartu",
        "enrol.title": "Daftarkan kartu baru",
        "enrol.hint": "Pilih orangnya, tekan tombol, lalu tempelkan kartu barunya ke pembaca "
                      "dalam 60 detik.",
        "enrol.arm": "Tempelkan kartu baru sekarang",
        "enrol.armed": "Tempelkan kartu baru untuk {name} ke pembaca… {s} detik lagi",
        "enrol.bound": "Kartu {card} sekarang milik {name}.",
        "enrol.expired": "Waktu habis: tidak ada kartu baru untuk {name}.",
        "enrol.cancelled": "Dibatalkan.",
        "enrol.cancel": "Batal",
        "enrol.unavailable": "Pendaftaran kartu hanya bisa saat layanan absensi berjalan.",
        "lost.title": "Laporkan kartu hilang",
        "lost.hint": "Kartu langsung ditolak di pembaca ini; laporan dikirim ke server.",
        "lost.card": "Kartu",
        "lost.none": "Tidak ada kartu aktif.",
        "lost.submit": "Laporkan hilang",
        "lost.confirm": "Kartu ini akan ditolak mulai sekarang. Lanjutkan?",
        "lost.done": "Kartu {card} dilaporkan hilang dan ditolak mulai sekarang.",
        "lost.failed": "Tidak bisa: {reason}",
        "unknown.title": "Kartu tak dikenal",
        "unknown.hint": "Kartu yang ditempelkan tetapi tidak ada di daftar (7 hari terakhir).",
        "unknown.none": "Tidak ada kartu tak dikenal.",
        "unknown.bound_to": "kini milik {name}",
        "requests.title": "Permintaan kartu ke server",
        "requests.none": "Belum ada permintaan.",
        "requests.bind": "Kartu baru",
        "requests.lost": "Hilang",
        "requests.result_applied": "diterapkan server",
        "requests.result_duplicate": "sudah ada di server",
        "requests.result_rejected": "ditolak server",
        "col.time": "Waktu",
        "col.who": "Nama / kartu",
        "col.name": "Nama",
        "col.id": "ID (NISN/NIP)",
        "col.group": "Rombel / unit",
        "col.status": "Status",
        "col.verdict": "Hasil",
        "col.first_tap": "Tap pertama",
        "col.last_tap": "Tap terakhir",
        "col.days": "Hari efektif",
        "col.action": "Tindakan",
        "col.card": "Kartu",
        "col.last_seen": "Terakhir",
        "col.first_seen": "Pertama",
        "col.taps": "Jumlah tap",
        "col.now": "Sekarang",
        "export.title": "Unduh rekap",
        "export.day": "Satu hari",
        "export.day_hint": "Per orang: status, tap pertama dan terakhir.",
        "export.date": "Tanggal",
        "export.month": "Satu bulan",
        "export.month_hint": "Per orang: jumlah hari per status sampai hari ini.",
        "export.month_field": "Bulan",
        "export.csv": "CSV (Excel)",
        "export.xlsx": "XLSX",
        "days": "Senin Selasa Rabu Kamis Jumat Sabtu Minggu",
        "months": "Januari Februari Maret April Mei Juni Juli Agustus September Oktober "
                  "November Desember",
    },
    "en": {
        "app.name": "Attendance",
        "nav.label": "Menu",
        "nav.today": "Today",
        "nav.roster": "Roster",
        "nav.excuses": "Excuses",
        "nav.cards": "Cards",
        "nav.export": "Download",
        "nav.account": "Account",
        "nav.logout": "Log out ({user})",
        "login.title": "Operator login",
        "login.username": "Username",
        "login.password": "Password",
        "login.submit": "Log in",
        "login.wrong": "Wrong username or password.",
        "login.locked": "This account is locked after too many wrong passwords. "
                        "Try again after {until}.",
        "login.too_many": "Too many login attempts from this device. Wait a moment and "
                          "try again.",
        "login.expired": "Your session ended after a while without use. Please log in again.",
        "login.required": "Please log in first.",
        "login.no_accounts": "There is no operator account yet. A technician creates one on "
                             "this device with:",
        "error.csrf": "This form has expired or is not valid. Reload the page and try again.",
        "error.not_found": "Page not found.",
        "account.title": "My account",
        "account.signed_in_as": "Logged in as {user}.",
        "account.old": "Current password",
        "account.new": "New password",
        "account.again": "New password again",
        "account.submit": "Change password",
        "account.old_wrong": "The current password is wrong.",
        "account.mismatch": "The two new passwords differ.",
        "account.too_short": "The new password needs at least {n} characters.",
        "account.changed": "Password changed.",
        "today.title": "Today",
        "today.counts": "Today at a glance",
        "today.total": "Out of {n} people on the roster.",
        "today.live": "Latest taps",
        "today.live_on": "live",
        "today.live_off": "disconnected",
        "today.no_taps": "No taps yet today.",
        "today.device": "Device",
        "count.present": "Present",
        "count.late": "Late",
        "count.not_arrived": "Not yet arrived",
        "count.excused": "Excused",
        "status.present": "Present",
        "status.late": "Late",
        "status.sakit": "Sick",
        "status.izin": "Leave (izin)",
        "status.dinas_luar": "Official duty",
        "status.cuti": "Annual leave (cuti)",
        "status.not_arrived": "Not yet arrived",
        "status.absent": "Absent",
        "verdict.accepted": "Accepted",
        "verdict.unknown": "Unknown",
        "verdict.blocked": "Blocked",
        "verdict.duplicate": "Repeat",
        "plan.server": "Start {start}, {grace} minutes' grace (schedule from the server).",
        "plan.config": "Start {start}, {grace} minutes' grace (device setting).",
        "plan.holiday": "Day off: {reason}",
        "plan.no_reason": "not a working day",
        "plan.weekend": "weekend",
        "plan.no_start": "No start time for today.",
        "plan.coming": "The next days",
        "page.notice": "Notice:",
        "service.reader": "Card reader",
        "service.backlog": "Not yet sent to the server",
        "service.last_sync": "Last sync",
        "service.clock": "Device clock",
        "service.waiting": "Waiting to be sent",
        "service.storage": "Storage",
        "service.unknown": "Unknown (the service is not running)",
        "service.reader_ok": "Connected",
        "service.readers_ok": "{n} readers connected",
        "service.reader_down": "{name} DOWN {error}",
        "service.no_reader": "No reader",
        "service.backlog_value": "{n} taps",
        "service.not_enrolled": "This device is not enrolled with a server",
        "service.sync_failing": "Failing; last success {when}",
        "service.never": "never",
        "service.clock_ok": "Correct (synchronised)",
        "service.clock_bad": "Not synchronised (the server will correct tap times)",
        "service.waiting_value": "{excuses} excuses, {cards} card requests",
        "roster.title": "Roster",
        "roster.group": "Class / unit",
        "roster.all_groups": "All",
        "roster.no_group": "(no class)",
        "roster.show": "Show",
        "roster.empty": "No people on this device yet. They come from the server when it syncs.",
        "roster.mark": "Excuse",
        "roster.no_card": "Has no card yet",
        "roster.no_card_short": "no card",
        "excuse.title": "Sick, leave, official duty, annual leave",
        "excuse.new": "Record an excuse",
        "excuse.person": "Person",
        "excuse.choose": "— choose —",
        "excuse.kind": "Kind",
        "excuse.from": "From",
        "excuse.to": "To",
        "excuse.note": "Note",
        "excuse.save": "Save",
        "excuse.list": "Current excuses",
        "excuse.none": "No excuses yet.",
        "excuse.saved": "{name}: {kind} recorded. It will be sent to the server.",
        "excuse.pick_person": "Choose the person.",
        "excuse.pick_kind": "Choose the kind.",
        "excuse.bad_date": "Not a valid date.",
        "excuse.order": "The end date is before the start date.",
        "excuse.withdraw": "Withdraw",
        "excuse.withdraw_confirm": "Withdraw {kind} for {name} ({days})? It will no longer "
                                   "count, on this device or on the server.",
        "excuse.withdrawn": "{name}: {kind} ({days}) withdrawn. It will be sent to the server.",
        "excuse.already_withdrawn": "This excuse was already withdrawn.",
        "excuse.withdrawn_at": "Withdrawn {when}",
        "sync.sent": "sent {when}",
        "sync.waiting": "waiting to be sent",
        "sync.withdrawal_sent": "withdrawal sent {when}",
        "sync.withdrawal_waiting": "withdrawal waiting to be sent",
        "cards.title": "Cards",
        "enrol.title": "Enrol a new card",
        "enrol.hint": "Choose the person, press the button, then hold the new card to the "
                      "reader within 60 seconds.",
        "enrol.arm": "Tap the new card now",
        "enrol.armed": "Hold the new card for {name} to the reader… {s} seconds left",
        "enrol.bound": "Card {card} now belongs to {name}.",
        "enrol.expired": "Time is up: no new card for {name}.",
        "enrol.cancelled": "Cancelled.",
        "enrol.cancel": "Cancel",
        "enrol.unavailable": "Cards can be enrolled only while the attendance service runs.",
        "lost.title": "Report a card lost",
        "lost.hint": "The card is refused at this reader at once; the report goes to the server.",
        "lost.card": "Card",
        "lost.none": "No active cards.",
        "lost.submit": "Report lost",
        "lost.confirm": "This card will be refused from now on. Continue?",
        "lost.done": "Card {card} reported lost and refused from now on.",
        "lost.failed": "Not possible: {reason}",
        "unknown.title": "Unknown cards",
        "unknown.hint": "Cards that were tapped but are not on the roster (last 7 days).",
        "unknown.none": "No unknown cards.",
        "unknown.bound_to": "now {name}'s",
        "requests.title": "Card requests to the server",
        "requests.none": "No requests yet.",
        "requests.bind": "New card",
        "requests.lost": "Lost",
        "requests.result_applied": "applied by the server",
        "requests.result_duplicate": "already on the server",
        "requests.result_rejected": "rejected by the server",
        "col.time": "Time",
        "col.who": "Name / card",
        "col.name": "Name",
        "col.id": "ID (NISN/NIP)",
        "col.group": "Class / unit",
        "col.status": "Status",
        "col.verdict": "Result",
        "col.first_tap": "First tap",
        "col.last_tap": "Last tap",
        "col.days": "Working days",
        "col.action": "Action",
        "col.card": "Card",
        "col.last_seen": "Last",
        "col.first_seen": "First",
        "col.taps": "Taps",
        "col.now": "Now",
        "export.title": "Download",
        "export.day": "One day",
        "export.day_hint": "Per person: status, first and last tap.",
        "export.date": "Date",
        "export.month": "One month",
        "export.month_hint": "Per person: days per status up to today.",
        "export.month_field": "Month",
        "export.csv": "CSV (Excel)",
        "export.xlsx": "XLSX",
        "days": "Monday Tuesday Wednesday Thursday Friday Saturday Sunday",
        "months": "January February March April May June July August September October "
                  "November December",
    },
}

bp = Blueprint("i18n", __name__)


def current_lang() -> str:
    return g.get("lang", DEFAULT_LANG)


def t(key: str, **values: Any) -> str:
    """The text of ``key`` in the request's language (the key itself if it is missing)."""
    text = CATALOG[current_lang()].get(key) or CATALOG[DEFAULT_LANG].get(key) or key
    return text.format(**values) if values else text


def status_label(status: str) -> str:
    return t(f"status.{status}")


def verdict_label(verdict: str) -> str:
    return t(f"verdict.{verdict}")


def format_day(day: date) -> str:
    """"Senin, 23 November 2026" / "Monday, 23 November 2026"."""
    days, months = t("days").split(), t("months").split()
    return f"{days[day.weekday()]}, {day.day} {months[day.month - 1]} {day.year}"


def format_when(value: str | None) -> str:
    """An ISO time as the operator reads it: the local time, with the date unless today."""
    if not value:
        return ""
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if when.tzinfo is not None:
        when = when.astimezone()
    if when.date() == datetime.now().astimezone().date():
        return when.strftime("%H:%M:%S")
    return when.strftime("%d-%m-%Y %H:%M")


def _choose_lang() -> None:
    asked = request.args.get("lang")
    if asked in LANGS:
        g.lang = asked
        g.set_lang_cookie = asked
        return
    cookie = request.cookies.get(COOKIE)
    g.lang = cookie if cookie in LANGS else DEFAULT_LANG


def _remember_lang(response: Response) -> Response:
    chosen = g.get("set_lang_cookie")
    if chosen:
        response.set_cookie(COOKIE, chosen, max_age=365 * 24 * 3600, samesite="Lax",
                            httponly=True)
    return response


@bp.get("/lang/<code>")
def switch(code: str) -> Any:
    """Switch the language and go back to the page the switch was pressed on."""
    target = request.args.get("next") or "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        target = "/"
    else:  # a ?lang= in the page's address would undo the switch
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "lang"])
        target = parts.path + (f"?{query}" if query else "")
    response = redirect(target)
    if code in LANGS:
        response.set_cookie(COOKIE, code, max_age=365 * 24 * 3600, samesite="Lax",
                            httponly=True)
    return response


def init_app(app: Flask) -> None:
    # Runs before the login guard (registered later), so redirects speak the language too.
    app.before_request(_choose_lang)
    app.after_request(_remember_lang)
    app.register_blueprint(bp)

    @app.context_processor
    def inject() -> dict[str, Any]:
        from edge.web import edge_context

        return {"_": t, "lang": current_lang(), "device": edge_context().config.device.name}
