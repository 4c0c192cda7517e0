-- resume: lets a paused rollout go on. The request goes into status.control, which ArgoCD
-- writes through the status subresource, so no field Git owns in spec changes.
if obj.status == nil then
  obj.status = {}
end
obj.status.control = {pause = false}
return obj
