"""Fleet provisioning by claim: provisioning templates and the `$aws/certificates/...` and
`$aws/provisioning-templates/...` MQTT APIs."""
