"""The thin layer between imagekit and the hcloud SDK: connecting, labels, advice for API errors
(``api``), waiting on actions (``actions``) and the lookups every command shares (``lookups``)."""
