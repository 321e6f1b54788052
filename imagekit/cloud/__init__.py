"""The thin layer between imagekit and the hcloud SDK: connecting, labels, advice for API errors (``api``),
waiting on actions (``actions``), the lookups every command shares (``lookups``), the spec a server is made
from, resolved once per command (``spec``), servers once they exist: their address, their deletion
(``servers``), and the leases on what gc may sweep, renewed while their run lives (``leases``)."""
