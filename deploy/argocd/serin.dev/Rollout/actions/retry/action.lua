-- retry: runs an aborted rollout again from its first step. The request goes into status.control, which ArgoCD
-- writes through the status subresource, so no field Git owns in spec changes.
if obj.status == nil then
  obj.status = {}
end
obj.status.control = {retry = true}
return obj
