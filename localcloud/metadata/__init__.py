"""The metadata service at 169.254.169.254, as Hetzner's: what each guest is told about itself, the listener that
answers it (one per guest, found by the link it arrives on), and the redirect that takes its requests there."""
