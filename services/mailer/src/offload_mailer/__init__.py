"""Offload mailer: welcome emails for signups, exactly one each."""
