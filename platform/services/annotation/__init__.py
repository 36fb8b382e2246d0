"""Community annotation: the services the CLI, the web pages and the webhook receiver call.

One module per concept; this package exports their verbs:

- ``projects``: a dataset's project per language, uploads (all rows or
  none), provisioning in Label Studio;
- ``webhooks``: Label Studio's webhook read as a notice (an action and ids);
- ``readback``: items read back from Label Studio, a whole project
  (reconciliation) or what a notice names;
- ``overlap``: k annotations per item from k different people, hand-outs,
  and which Label Studio user a Sabha user annotates as;
- ``agreement``: agreement of the votes per language and overall;
- ``review``: the review queue and verdicts tied to the version seen;
- ``release``: the gates, gold answers and the released dataset version;
- ``blockers``: what still blocks a dataset's release, per language;
- ``upkeep``: scheduled reconciliation, webhook URLs, corrections before release.

``demo`` (the demo's sample project and annotator) is imported by its own
name: it builds on ``services.annotators``, which builds on this package.

Every write is one transaction (``session_scope``), and Label Studio is
reached only through ``sabha.annotation.labelstudio``.
"""

from .agreement import dataset_agreement
from .blockers import (
    DatasetBlockers,
    DatasetBlockersPublic,
    LanguageBlockers,
    annotated_datasets,
    release_blockers,
)
from .overlap import (
    annotator_counts,
    items_needing_annotations,
    link_labelstudio_account,
    next_items_for,
)
from .projects import (
    create_annotation_project,
    get_annotation_project,
    provision_project,
    upload_source_items,
)
from .readback import apply_webhook, sync_project
from .release import (
    AnnotatedRelease,
    Contribution,
    DatasetVotes,
    annotated_items,
    check_release_gates,
    contribution_of,
    dataset_votes,
    gate_inputs,
    release_annotated_dataset,
    require_release_gates,
)
from .review import (
    MAX_COMMENT_CHARS,
    AnnotationToReview,
    ReviewOutdated,
    ReviewPublic,
    ReviewQueue,
    linked_labelstudio_users,
    review_annotation,
    review_queue,
    votes_and_accepted,
)
from .upkeep import (
    WEBHOOK_PATH,
    ProjectSync,
    SyncRound,
    set_item_split,
    sync_annotation_projects,
    webhook_url_for,
    withdraw_item,
)
from .webhooks import (
    MAX_NOTICE_IDS,
    WebhookNotice,
    WebhookRefused,
    webhook_notice,
    webhook_secret_matches,
)

__all__ = [
    "MAX_COMMENT_CHARS",
    "MAX_NOTICE_IDS",
    "WEBHOOK_PATH",
    "AnnotatedRelease",
    "AnnotationToReview",
    "Contribution",
    "DatasetBlockers",
    "DatasetBlockersPublic",
    "DatasetVotes",
    "LanguageBlockers",
    "ProjectSync",
    "ReviewOutdated",
    "ReviewPublic",
    "ReviewQueue",
    "SyncRound",
    "WebhookNotice",
    "WebhookRefused",
    "annotated_datasets",
    "annotated_items",
    "annotator_counts",
    "apply_webhook",
    "check_release_gates",
    "contribution_of",
    "create_annotation_project",
    "dataset_agreement",
    "dataset_votes",
    "gate_inputs",
    "get_annotation_project",
    "items_needing_annotations",
    "link_labelstudio_account",
    "next_items_for",
    "provision_project",
    "release_annotated_dataset",
    "release_blockers",
    "require_release_gates",
    "review_annotation",
    "linked_labelstudio_users",
    "review_queue",
    "votes_and_accepted",
    "set_item_split",
    "sync_annotation_projects",
    "sync_project",
    "upload_source_items",
    "webhook_notice",
    "webhook_secret_matches",
    "webhook_url_for",
    "withdraw_item",
]
