"""Policy-change notifications (docs/rules.md): every user told once, through SendGrid, when the policy changes.

``versions`` finds the policy version to announce, ``recipients`` builds a campaign's ledger in bulk,
``messages`` renders what a recipient receives, ``ledger`` hands the delivery engine its batches (checking
each recipient again at send time), and ``campaign`` holds the steps the DAG's tasks call.
"""
